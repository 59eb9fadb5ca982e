"""`data scan/split/cache` and `augment presets/preview`: the data set and its augmentation."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tlcore.errors import TransferLabError, one_line
from tlcore.cli.shared import EXIT_USER_ERROR, slow_phases

__all__ = [
    "cmd_data_scan",
    "cmd_data_split",
    "cmd_data_cache",
    "cmd_augment_presets",
    "check_picture_path",
    "cmd_augment_preview",
    "cmd_augment_text_preview",
]


def _scan_any(args: argparse.Namespace, **options):
    """The data's scan report, read by its kind (pictures, texts...: the kind comes from the data)."""
    from tlcore.modality import for_data

    return for_data(args.path).read(args.path, args, **options)


def cmd_data_scan(args: argparse.Namespace) -> int:
    """`data scan PATH`: every file checked, the report printed (or its JSON).

    Args:
        args: the command's parsed options (see `parser`).

    Returns:
        The exit status: 0 done, `EXIT_USER_ERROR` when the work did not succeed.
    """
    report = _scan_any(args, max_file_mb=args.max_file_mb)
    print(report.to_json() if args.json else report.summary())
    for error in report.errors:
        print(f"error: {one_line(error)}", file=sys.stderr)  # a class name may hold a line break
    return EXIT_USER_ERROR if report.errors else 0


def cmd_data_label(args: argparse.Namespace) -> int:
    """`data label PICTURE... --as CLASS --into FOLDER`: a few target pictures labelled, for `adapt.labelled`.

    Args:
        args: the command's parsed options (see `parser`).

    Returns:
        The exit status: 0 done, `EXIT_USER_ERROR` when the work did not succeed.
    """
    from tlcore.data.labelling import GOAL_PER_CLASS, LabelBook

    folder = Path(args.into)
    if args.data:
        classes = list(_scan_any(argparse.Namespace(**{**vars(args), "path": args.data})).classes)
    else:
        found = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) \
            if folder.is_dir() else []
        classes = found + ([args.label] if args.label and args.label not in found else [])
    book = LabelBook(folder, classes)
    if args.undo:
        undone = book.undo()
        print("nothing to undo" if undone is None else f"undone: {undone.get('action')} {undone.get('source', '')}")
    else:
        if not args.pictures or not args.label:
            raise TransferLabError("give the pictures and their class", "e.g. data label a.jpg b.jpg --as cat --into "
                                                                        "few_labelled/ [--data my_photos/]")
        for picture in args.pictures:
            print(f"{picture} -> {book.label(picture, args.label)}")
    counts = book.counts()
    print(", ".join(f"{c} {n}" for c, n in counts.items()) + f" (the goal: {GOAL_PER_CLASS} per class)")
    return 0


def cmd_data_split(args: argparse.Namespace) -> int:
    """`data split PATH`: a stratified, seeded split saved as a manifest.

    Args:
        args: the command's parsed options (see `parser`).

    Returns:
        The exit status: 0 done, `EXIT_USER_ERROR` when the work did not succeed.
    """
    from tlcore.data import default_manifest_path, make_split

    with slow_phases(3) as say:  # a million texts take half a minute: the wait says where it is
        say(f"reading {Path(args.path).name}")
        report = _scan_any(args)
        say(f"splitting {len(report.images):,} items")
        manifest = make_split(report, seed=args.seed, val=args.val, test=args.test, test_from_val=args.test_from_val)
        say("saving the split")
        out = manifest.save(args.out or default_manifest_path(report, args.seed))
    counts = manifest.counts()
    width = max(len(c) for c in manifest.classes)
    print(f"split {manifest.id} (seed {manifest.seed}) of {manifest.root}")
    print(f"  {'class':<{width}}  {'train':>6} {'val':>6} {'test':>6}")
    for label in manifest.classes:
        print(f"  {label:<{width}}  " + " ".join(f"{counts[s][label]:>6}" for s in ("train", "val", "test")))
    for note in manifest.notes:
        print(f"note: {note}")
    print(f"manifest written to {out}")
    return 0


def cmd_data_cache(args: argparse.Namespace) -> int:
    """`data cache PATH`: every picture decoded once into the cache a GPU run reads.

    Args:
        args: the command's parsed options (see `parser`).

    Returns:
        The exit status: 0 done, `EXIT_USER_ERROR` when the work did not succeed.
    """
    from tlcore.data import make_split, scan
    from tlcore.inputs.decoded import DecodedCache, cache_bytes
    from tlcore.models import ModelSpec, build_model
    from tlcore.models.weights import WeightsError

    report = scan(args.path)
    manifest = make_split(report, seed=0)  # the cache is keyed by picture content: any split reads it
    size = (3, args.input_size, args.input_size) if args.input_size else None
    try:  # the preprocessing is what matters; it comes from the model's config even without its weights here
        built = build_model(ModelSpec(name=args.model), None, input_size=size)
    except WeightsError:
        built = build_model(ModelSpec(name=args.model, weights="random"), None, input_size=size)
    cache = DecodedCache(manifest.root, built.preprocessing)
    pictures = manifest.hashed_paths()
    missing = cache.missing([h for _, h in pictures])
    total = cache_bytes(len(pictures), built.preprocessing)
    print(f"{len(pictures):,} pictures at {cache.side}x{cache.side} px for {built.arch}: {total / 1e9:.2f} GB "
          f"({len(missing):,} to decode, {len(pictures) - len(missing):,} already cached; limit {args.max_gb:g} GB)")
    progress = (lambda done, n: print(f"  decoded {done:,} of {n:,}", flush=True)) if missing else (lambda d, n: None)
    built_now = cache.build(pictures, args.max_gb, on_progress=progress)
    for path in built_now.unreadable:
        print(f"error: cannot decode {path}", file=sys.stderr)
    print(f"cache ready: {cache.data_path} ({built_now.bytes / 1e9:.2f} GB); {built_now.decoded:,} decoded now, "
          f"{built_now.reused:,} reused")
    return EXIT_USER_ERROR if built_now.unreadable else 0


def cmd_augment_presets(args: argparse.Namespace) -> int:
    """`augment presets`: the presets, each with what it is for.

    Args:
        args: the command's parsed options (see `parser`).

    Returns:
        The exit status: 0 done, `EXIT_USER_ERROR` when the work did not succeed.
    """
    from tlcore.inputs.augment_spec import PRESETS

    width = max(len(n) for n in PRESETS)
    for name, (why, transforms) in PRESETS.items():
        steps = ", ".join(t["__class_fullname__"] for t in transforms) or "-"
        print(f"{name:<{width}}  {why}\n{'':<{width}}  steps: {steps}")
    return 0


def cmd_augment_text_preview(args: argparse.Namespace) -> int:
    """`augment text-preview TEXT`: the text as N epochs of a text run would change it.

    Args:
        args: the command's parsed options (see `parser`).

    Returns:
        The exit status: 0 done, `EXIT_USER_ERROR` when the work did not succeed.
    """
    from dataclasses import replace

    from tlcore.text.augment import TEXT_AUGMENT_PRESETS, TextAugment, TextAugmenter

    text = args.text
    if text.lower().endswith(".txt"):
        from tlcore.core.paths import user_path

        path = user_path(text)
        try:
            text = (path.read_text(encoding="utf-8").splitlines() or [""])[0]
        except (OSError, UnicodeDecodeError) as exc:
            raise TransferLabError(f"cannot read {path.name}: {getattr(exc, 'strerror', None) or exc}",
                                   "give a UTF-8 .txt file, or the text itself") from None
    if not text.split():
        raise TransferLabError("there is no word in that text to change", "give a text with words")
    spec = TEXT_AUGMENT_PRESETS[args.preset] if args.preset else TextAugment()
    spec = replace(spec, **{field: value for field, value in (("word_dropout", args.word_dropout),
                                                              ("swap", args.swap), ("deletion", args.deletion))
                            if value is not None})
    print(f"text_augment {spec.to_dict()}" + ("" if spec.active else ": nothing changes; give --preset or a share"))
    print(f"as it is: {text}")
    augmenter = TextAugmenter(spec)
    for epoch in range(args.n):
        augmenter.set_random_seed(args.seed + epoch)
        print(f"epoch {epoch + 1}: {augmenter(text, 0)}")
    return 0


_PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def check_picture_path(path: Path | str, option: str) -> None:
    """A picture the command will write: refused before any work when its name ends in no format we write.

    Args:
        path: the file the option names.
        option: the option, for the message.

    Raises:
        TransferLabError: a suffix that is not a picture format's.
    """
    if Path(path).suffix.lower() not in _PICTURE_SUFFIXES:
        raise TransferLabError(f"{option} {Path(path).name}: cannot write a picture of that kind",
                               "end the file name in .png or .jpg")


def cmd_augment_preview(args: argparse.Namespace) -> int:
    """`augment preview IMAGE`: one picture augmented N times, written as a grid image.

    Args:
        args: the command's parsed options (see `parser`).

    Returns:
        The exit status: 0 done, `EXIT_USER_ERROR` when the work did not succeed.
    """
    check_picture_path(args.out, "--out")
    import numpy as np
    from PIL import Image

    from tlcore.inputs.augment import AugmentSpec, eval_pipeline, make_grid, model_view, preset, preview
    from tlcore.data import load_rgb
    from tlcore.errors import TransferLabError
    from tlcore.models import ModelSpec, WeightsError, build_model

    if args.spec:
        try:
            spec = AugmentSpec.from_dict(json.loads(Path(args.spec).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise TransferLabError(f"cannot read augmentation spec {args.spec}: {exc}", "give a JSON file") from None
    else:
        spec = preset(args.preset)
    try:
        prep = build_model(ModelSpec(name=args.model), 2).preprocessing
    except WeightsError:  # preprocessing needs no weights
        prep = build_model(ModelSpec(name=args.model, weights="random"), 2).preprocessing
    image = np.asarray(load_rgb(args.image))
    pictures = preview(image, spec, prep, n=args.n, seed=args.seed)
    if args.model_view:
        pictures.append(model_view(eval_pipeline(prep)(image=image)["image"], prep))
    Image.fromarray(make_grid(pictures, columns=args.columns)).save(args.out)
    extra = " plus what the model sees at evaluation (last)" if args.model_view else ""
    print(f"wrote {len(pictures) - bool(args.model_view)} augmented versions{extra} to {args.out} "
          f"({args.model} input {prep.input_size[1]}x{prep.input_size[2]}, seed {args.seed})")
    return 0
