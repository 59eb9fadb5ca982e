"""`python -m tlcore`: the engine from a terminal, with one-line errors instead of tracebacks."""

from __future__ import annotations

import argparse
import math
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from tlcore.errors import TransferLabError
from tlcore.strategies import STRATEGIES

__all__ = ["main", "build_parser"]

EXIT_USER_ERROR = 1


def _scan_any(args: argparse.Namespace, **options):
    """A picture folder's scan report, or a text file's (the kind comes from the data)."""
    from tlcore.data import scan
    from tlcore.text.data import is_text_source, read_texts

    if is_text_source(args.path):
        limit = options.get("max_file_mb")
        return read_texts(args.path, text_column=args.text_column, label_column=args.label_column,
                          **({"max_file_mb": limit} if limit else {}))
    return scan(args.path, **options)


def _cmd_data_scan(args: argparse.Namespace) -> int:
    report = _scan_any(args, max_file_mb=args.max_file_mb)
    print(report.to_json() if args.json else report.summary())
    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)
    return EXIT_USER_ERROR if report.errors else 0


def _cmd_data_split(args: argparse.Namespace) -> int:
    from tlcore.data import default_manifest_path, make_split

    report = _scan_any(args)
    manifest = make_split(report, seed=args.seed, val=args.val, test=args.test, test_from_val=args.test_from_val)
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


def _cmd_data_cache(args: argparse.Namespace) -> int:
    from tlcore.data import make_split, scan
    from tlcore.decoded import DecodedCache, cache_bytes
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


def _print_cards(cards: list) -> None:
    width = max([len(c.name) for c in cards] + [5])
    print(f"{'model':<{width}}  {'family':<26} {'params':>9}  {'input':>9}  offline weights")
    for card in cards:
        size = "x".join(str(v) for v in card.input_size[1:])
        offline = "yes" if card.offline_weights else "no (needs a weights file)"
        print(f"{card.name:<{width}}  {card.family:<26} {card.params_millions:>8.1f}M  {size:>9}  {offline}")


def _cmd_models_list(args: argparse.Namespace) -> int:
    from tlcore.models import search

    cards = search(args.search or "", limit=args.limit)
    if not cards:
        raise TransferLabError(f"no model matches '{args.search}'", "try a shorter part of a name, e.g. 'resnet' or "
                                                                    "'vit'; `models list` shows the recommended ones")
    if not args.search:
        print("recommended models (use --search TEXT to search all of timm's pretrained models):")
    _print_cards(cards)
    return 0


def _cmd_models_rank(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from tlcore.config import DataConfig, RunConfig
    from tlcore.rank import ModelScore, default_candidates, parse_candidates, rank_models

    if bool(args.data) == bool(args.config):
        raise TransferLabError("give the pictures to rank models on: --data FOLDER, or --config RUN.json",
                               "e.g. python -m tlcore models rank --data sample_data --models tf_efficientnet_lite0,"
                               "tf_efficientnet_lite0@random")
    base = RunConfig.load(args.config) if args.config else RunConfig(data=DataConfig(source=args.data))
    if args.input_size:
        base = replace(base, input_size=(3, args.input_size, args.input_size))
    candidates = parse_candidates(args.models) if args.models else default_candidates()
    if not candidates:
        raise TransferLabError("no recommended model has weights on this machine", "name models with --models")

    def progress(done: int, total: int, score: ModelScore) -> None:
        if args.json:
            print(json.dumps(score.to_dict()), flush=True)
        else:
            print(f"[{done}/{total}] {score.candidate}: " + (score.error or f"{score.seconds:.1f} s"), flush=True)

    scores = rank_models(base, candidates, progress)
    if all(s.error for s in scores):
        raise TransferLabError(f"none of the {len(scores)} model(s) could be scored ({scores[0].candidate}: "
                               f"{scores[0].error})", "rank models with offline weights, or give their weights files")
    if args.json:
        return 0
    print(f"\n{'rank':<4} {'model':<46} {'LogME':>7} {'probe acc':>9} {'seconds':>8} {'img/s':>7} {'params M':>8}")
    for i, s in enumerate(scores, 1):
        if s.error:
            print(f"{'-':<4} {s.candidate:<46} not scored: {s.error}")
            continue
        speed = "cached" if s.images_per_s is None else f"{s.images_per_s:.0f}"
        print(f"{i:<4} {s.label[:46]:<46} {s.logme:>7.3f} {s.probe_accuracy:>9.3f} {s.seconds:>8.1f} {speed:>7} "
              f"{s.params_millions:>8.1f}")
    print("LogME: how well a linear model on the frozen features explains the labels (higher is better); probe acc: "
          "a logistic regression on the training features, scored on the validation split. img/s: feature "
          "extraction speed here, a guide to training speed.")
    if sum(s.error is None for s in scores) < 2:
        print("only one model could be scored: add a baseline such as NAME@random, or give other models' weights")
    return 0


def _build_for_show(args: argparse.Namespace):
    """Showing groups needs no weights: without any, build randomly initialised and say so once."""
    from tlcore.models import ModelSpec, WeightsError, build_model
    from tlcore.text.model import build_text_model, is_text_model

    if is_text_model(args.name):
        return build_text_model(ModelSpec(name=args.name, weights="random" if args.random_init else "auto"),
                                args.classes or 2)
    spec = ModelSpec(name=args.name, weights="random" if args.random_init else (args.weights or "auto"),
                     allow_download=args.download, fine_groups=args.fine)
    try:
        return build_model(spec, args.classes)
    except WeightsError as exc:
        if args.weights:  # a file the user named must load
            raise
        print(f"note: {exc}", file=sys.stderr)
        return build_model(ModelSpec(name=args.name, weights="random", fine_groups=args.fine), args.classes)


def _show_text_model(args: argparse.Namespace) -> int:
    from tlcore.text.model import text_facts

    facts = text_facts(args.name)
    built = _build_for_show(args)
    print(f"{facts.name}  (text encoder: {facts.layers} transformer layers, hidden size {facts.hidden}, "
          f"{facts.params / 1e6:.1f}M parameters)")
    print(f"weights: {facts.weights}")
    print(f"input: at most {facts.max_length} tokens per text (runs use {built.max_length}); vocabulary "
          f"{facts.vocabulary:,} word pieces; mean pooling over the tokens, then the new head")
    print(f"layer groups, embeddings to head ({len(built.groups)}):")
    width = max(len(g.name) for g in built.groups)
    for g in built.groups:
        print(f"  {g.index:>2}  {g.name:<{width}}  {g.role:<4}  {g.params:>12,}")
    return 0


def _cmd_models_show(args: argparse.Namespace) -> int:
    from tlcore.models import model_card
    from tlcore.text.model import is_text_model

    if is_text_model(args.name):
        return _show_text_model(args)
    card = model_card(args.name)
    built = _build_for_show(args)
    p = built.preprocessing
    print(f"{built.label}  ({card.family}, {card.params_millions:.1f}M parameters with the ImageNet head)")
    print(f"weights: {built.weights.description}")
    print(f"input: {'x'.join(map(str, p.input_size))}, {p.interpolation}, crop {p.crop_pct}, mean {p.mean}, std {p.std}")
    print(f"layer groups, stem to head ({len(built.groups)}):")
    width = max(len(g.name) for g in built.groups)
    for g in built.groups:
        shape = "x".join(map(str, g.output_shape)) if g.output_shape else "?"
        print(f"  {g.index:>2}  {g.name:<{width}}  {g.role:<4}  {g.params:>12,}  -> {shape}")
    return 0


def _cmd_freeze_show(args: argparse.Namespace) -> int:
    from tlcore.freeze import STRATEGIES, make_plan, summarize

    built = _build_for_show(args)
    plan = make_plan(args.strategy, len(built.groups), k=args.k, every=args.every, head_epochs=args.head_epochs,
                     lr_spread=args.lr_spread, train_bn=args.train_bn)
    print(f"{built.label}: {args.strategy}. {STRATEGIES[args.strategy]}")
    print(f"BatchNorm in frozen groups: {'updated' if plan.train_bn else 'kept at ImageNet statistics'}")
    for stage in plan.stages:
        if stage.epoch < args.epochs:
            print(f"\nfrom epoch {stage.epoch}:")
            print(summarize(built.groups, plan, stage.epoch, horizon=args.epochs).table())
    print(f"\nplan as JSON: {json.dumps(plan.to_dict())}")
    return 0


def _cmd_augment_presets(args: argparse.Namespace) -> int:
    from tlcore.augment import PRESETS

    width = max(len(n) for n in PRESETS)
    for name, (why, transforms) in PRESETS.items():
        steps = ", ".join(t["__class_fullname__"] for t in transforms) or "-"
        print(f"{name:<{width}}  {why}\n{'':<{width}}  steps: {steps}")
    return 0


PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def _check_picture_path(path: Path | str, option: str) -> None:
    """A picture the command will write: refused before any work when its name ends in no format we write."""
    if Path(path).suffix.lower() not in PICTURE_SUFFIXES:
        raise TransferLabError(f"{option} {Path(path).name}: cannot write a picture of that kind",
                               "end the file name in .png or .jpg")


def _cmd_augment_preview(args: argparse.Namespace) -> int:
    _check_picture_path(args.out, "--out")
    import numpy as np
    from PIL import Image

    from tlcore.augment import AugmentSpec, eval_pipeline, make_grid, model_view, preset, preview
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


def _progress_printer():
    """A one-line progress bar for `train`, then one line per epoch and per warning."""
    def show(event) -> None:
        if event.kind == "progress":
            d = event.data
            name, step, steps = (("features", d["done"], d["total"]) if d.get("phase") == "features" else
                                 (f"epoch {d['epoch'] + 1}", d["step"], d["steps"]))
            done = int(30 * step / max(1, steps))
            print(f"\r  {name} [{'#' * done}{'.' * (30 - done)}] {step}/{steps}", end="", flush=True)
        else:
            prefix = "warning: " if event.kind == "warning" else ""
            print(f"\r{' ' * 60}\r{prefix}{event.message}", flush=True)
    return show


def _add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                        help="run on Ray: alone, a Ray instance started here; `auto` or an address (ray://head:10001) "
                             "joins a cluster (pip install -r requirements-scale.txt)")
    data = parser.add_mutually_exclusive_group()
    data.add_argument("--shared-data", dest="ray_data", action="store_const", const="shared",
                      help="with --ray: every node reads the data and writes run folders at the same paths")
    data.add_argument("--ship-data", dest="ray_data", action="store_const", const="ship",
                      help="with --ray: send the split's pictures through Ray's object store (the default for a "
                           "cluster, up to 2 GB)")
    parser.add_argument("--ray-cpus-per-run", type=_bounded(int, 1, 1024), default=1, help="with --ray on CPUs: CPUs each run takes")


def _drive_on_ray(store, run_ids: list[str], args: argparse.Namespace) -> dict[str, str]:
    """The runs on Ray, their log lines printed as they come; returns run id -> status."""
    from tlcore.on_ray import drive

    def show(run, kind: str, message: str) -> None:
        if kind != "progress":
            print(f"{run.name}: {'warning: ' if kind == 'warning' else ''}{message}", flush=True)

    return drive(store, run_ids, args.ray or None, data_mode=args.ray_data, cpus_per_run=args.ray_cpus_per_run,
                 on_event=show)


def _cmd_train(args: argparse.Namespace) -> int:
    import os

    from tlcore.config import RunConfig
    from tlcore.worker import ensure_worker, execute, submit

    config = RunConfig.load(args.config)
    if args.nproc:
        config = RunConfig.from_dict({**config.to_dict(), "distributed": {**config.to_dict()["distributed"],
                                                                          "nproc_per_node": args.nproc}})
    store = _store()
    if args.ray is not None:
        run = submit(config, store, runner=_runner(args))
        print(f"run {run.id} ({run.name}) goes to Ray; the run store here follows it")
        status = _drive_on_ray(store, [run.id], args).get(run.id, "failed")
        final = store.get(run.id)
        print(f"run {run.id}: {status}" + (f": {final.error}" if final.error else ""))
        return 0 if status == "succeeded" else EXIT_USER_ERROR
    if args.background:
        run = submit(config, store)
        print(f"queued run {run.id}; follow it with `python -m tlcore runs show {run.id}`")
        return 0
    if not store.register_worker(os.getpid()):  # one run at a time per data folder, foreground or not
        busy = [r.id for r in store.list(status="running")]
        raise TransferLabError(f"another run is training in this data folder ({busy[0] if busy else 'starting'})",
                               "queue this one with --background (it starts when that one ends), or wait")
    try:
        run = submit(config, store, start=False)
        store.start_in_process(run.id, os.getpid())
        print(f"run {run.id} ({run.name}), folder {run.run_dir}")
        try:
            status = execute(store, store.get(run.id), on_event=_progress_printer())
        except KeyboardInterrupt:  # pragma: no cover - interactive
            store.finish(run.id, "cancelled", "interrupted from the keyboard")
            raise
    finally:
        store.unregister_worker(os.getpid())
    if store.list(status="queued"):
        ensure_worker(store)  # runs queued meanwhile were waiting for this one
    final = store.get(run.id)
    print(f"run {run.id}: {status}" + (f": {final.error}" if final.error else ""))
    return 0 if status == "succeeded" else EXIT_USER_ERROR


def _cmd_worker(args: argparse.Namespace) -> int:
    import os
    import time

    from tlcore.worker import WORKER_LINGER_S, run_worker

    time.sleep(float(os.environ.get("TRANSFERLAB_TEST_WORKER_START_DELAY_S", "0")))  # tests: a slow start-up
    done = run_worker(linger=float(os.environ.get("TRANSFERLAB_WORKER_LINGER_S", WORKER_LINGER_S)))
    print(f"worker finished: {done} run(s)")
    return 0


def _runner(args: argparse.Namespace) -> str | None:
    """The store's runner for what this command queues: a Ray driver's with --ray, else the local worker's."""
    if args.ray is None:
        return None
    from tlcore.on_ray import RAY_RUNNER

    return RAY_RUNNER


_OPENED: list = []  # the stores this command opened, and how many of their notes were said


def _store():
    """The run store, saying what opening it had to do (a damaged store set aside, runs found again); what it
    has to do later in the command (rebuilt under an operation) is said when the command ends."""
    from tlcore.runs import RunStore

    store = RunStore()
    _OPENED.append([store, 0])
    _say_store_notes()
    return store


def _say_store_notes() -> None:
    for entry in _OPENED:
        store, said = entry
        for note in store.notes[said:]:
            print(f"note: {note}", file=sys.stderr)
        entry[1] = len(store.notes)


def _fmt_time(ts: float | None) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


def _cmd_runs_list(args: argparse.Namespace) -> int:
    store = _store()
    store.reap_dead()
    runs = store.list(status=args.status)
    if not runs:
        print("no runs yet: start one with `python -m tlcore train CONFIG.json`")
        return 0
    print(f"{'id':<22} {'status':<10} {'epochs':>7} {'best val acc':>12} {'test acc':>8}  {'created':<16}  name")
    for run in runs:
        metrics = store.metrics(run.id)
        best = max((m["val_acc"] for m in metrics), default=None)
        test = _test_accuracy(run)
        print(f"{run.id:<22} {run.status:<10} {run.epochs_done:>3}/{run.epochs:<3} "
              f"{'-' if best is None else f'{best:.3f}':>12} {'-' if test is None else f'{test:.3f}':>8}  "
              f"{_fmt_time(run.created):<16}  {run.name}")
    return 0


def _test_accuracy(run) -> float | None:
    from tlcore.run_files import read_evaluation

    evaluation = read_evaluation(run.run_dir)
    return evaluation.get("accuracy") if evaluation else None


def _cmd_runs_show(args: argparse.Namespace) -> int:
    store = _store()
    store.reap_dead()
    run = store.get(args.run_id)
    print(f"run {run.id}: {run.name}\nstatus: {run.status}" + (f" ({run.error})" if run.error else ""))
    print(f"folder: {run.run_dir}\ncreated {_fmt_time(run.created)}, started {_fmt_time(run.started)}, "
          f"finished {_fmt_time(run.finished)}")
    print(f"{'epoch':>5} {'train loss':>10} {'train acc':>9} {'val loss':>9} {'val acc':>8} {'img/s':>7} {'s':>6}")
    for m in store.metrics(run.id):
        print(f"{m['epoch'] + 1:>5} {m['train_loss']:>10.4f} {m['train_acc']:>9.3f} {m['val_loss']:>9.4f} "
              f"{m['val_acc']:>8.3f} {m['images_per_s']:>7.1f} {m['epoch_seconds']:>6.1f}")
    for event in store.events(run.id, kinds=("warning", "error", "stage", "log")):
        print(f"  [{event['kind']}] {event['message']}")
    if args.config:
        print(json.dumps(run.config, indent=2))
    return 0


def _cmd_runs_cancel(args: argparse.Namespace) -> int:
    run = _store().request_cancel(args.run_id)
    print(f"run {run.id}: {'cancelled' if run.status == 'cancelled' else 'will stop at its next step'}")
    return 0


def _cmd_runs_resume(args: argparse.Namespace) -> int:
    from tlcore.worker import ensure_worker

    if args.ray is not None:
        store = _store()
        run = store.requeue_for_resume(args.run_id, _runner(args))
        print(f"run {run.id} resumes on Ray from its last checkpoint (epoch {run.epochs_done})")
        status = _drive_on_ray(store, [run.id], args).get(run.id, "failed")
        print(f"run {run.id}: {status}" + (f": {store.get(run.id).error}" if store.get(run.id).error else ""))
        return 0 if status == "succeeded" else EXIT_USER_ERROR
    run = _store().requeue_for_resume(args.run_id)
    ensure_worker()
    print(f"run {run.id} queued to resume from its last checkpoint (epoch {run.epochs_done})")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from tlcore.evaluate import evaluate_folder, evaluate_run

    given = _existing_folder(args.run_id)
    if given is not None and (given / "config.json").is_file():  # a run folder (e.g. of a multi-node torchrun)
        run_dir, run_id = str(given), given.name
    else:
        run = _store().get(args.run_id)
        run_dir, run_id = run.run_dir, run.id
    if args.data:
        def progress(phase: str, done: int, total: int) -> None:
            with open(args.progress, "a") as fh:  # one JSON line per batch, for a page that follows it
                fh.write(json.dumps({"phase": phase, "done": done, "total": total}) + "\n")

        evaluation, folder = evaluate_folder(run_dir, args.data, on_progress=progress if args.progress else
                                             lambda *a: None)
        where = f"{evaluation.n} pictures of {args.data}"
    else:
        evaluation, folder = evaluate_run(run_dir), Path(run_dir)
        where = f"{evaluation.n} held-out {evaluation.split} images"
    if args.json:
        print(json.dumps({**evaluation.to_dict(), "run_id": run_id, "predictions": str(folder / "predictions.csv")}))
        return 0
    print(f"run {run_id} on {where}: accuracy {evaluation.accuracy:.3f}, "
          f"balanced accuracy {evaluation.balanced_accuracy:.3f}")
    width = max(len(c) for c in evaluation.classes)
    print(f"  {'class':<{width}}  precision  recall     f1  support")
    for c in evaluation.per_class:
        print(f"  {c.label:<{width}}  {c.precision:>9.3f}  {c.recall:>6.3f}  {c.f1:>5.3f}  {c.support:>7}")
    print("confusion matrix (rows: true, columns: predicted):")
    for label, row in zip(evaluation.classes, evaluation.confusion):
        print(f"  {label:<{width}}  " + " ".join(f"{v:>5}" for v in row))
    print(f"predictions: {folder / 'predictions.csv'}")
    return 0


def _cmd_lr_find(args: argparse.Namespace) -> int:
    from tlcore.config import RunConfig
    from tlcore.lr_find import lr_find

    def progress(step: int, steps: int, lr: float, loss: float) -> None:
        with open(args.progress, "a") as fh:  # one JSON line per step, for a page that follows it
            fh.write(json.dumps({"step": step, "steps": steps, "lr": lr, "loss": loss}) + "\n")

    curve = lr_find(RunConfig.load(args.config), steps=args.steps, on_step=progress if args.progress else
                    lambda *a: None)
    for lr, loss in list(zip(curve.lrs, curve.losses))[:: max(1, len(curve.lrs) // 15)]:
        print(f"  lr {lr:9.2e}  loss {loss:.4f}")
    print(f"suggested learning rate: {curve.suggestion:.2e}")
    if args.out:
        Path(args.out).write_text(json.dumps(curve.to_dict()))
    return 0


def _cmd_estimate(args: argparse.Namespace) -> int:
    from tlcore.config import RunConfig
    from tlcore.estimate import estimate_times

    configs = [RunConfig.load(path) for path in args.config]  # all checked before the first is measured

    def show(index: int, estimate) -> None:
        line = json.dumps(estimate.to_dict()) if args.json else f"{args.config[index]}: {estimate.describe()}"
        print(line, flush=True)  # one line per config as it is known: a page follows them

    estimate_times(configs, on_each=show)
    return 0


def _print_sweep(rows, verdict_text: str) -> None:
    from tlcore.compare import cell_summaries

    def f(v, spec):
        return "-" if v is None else format(v, spec)

    folders = sorted({name for r in rows for name in r.folders})
    width = max([22] + [len(r.strategy) + 1 for r in rows])
    print(f"{'run':<{width}} {'seed':>4} {'status':<10} {'test acc':>8} {'F1':>6} {'best ep':>7} {'seconds':>8} "
          f"{'img/s':>8} {'trainable':>12} {'peak MB':>8}" + "".join(f" {name[:14]:>14}" for name in folders))
    for r in rows:
        print(f"{r.strategy:<{width}} {r.seed:>4} {r.status:<10} {f(r.test_accuracy, '.3f'):>8} "
              f"{f(r.macro_f1, '.3f'):>6} {f(r.best_epoch, 'd'):>7} {f(r.wall_seconds, '.0f'):>8} "
              f"{f(r.images_per_s, '.0f'):>8} {f(r.trainable_params, ',d'):>12} {f(r.peak_memory_mb, '.0f'):>8}"
              + "".join(f" {f(r.folders.get(name), '.3f'):>14}" for name in folders))
    if folders:
        print("(the last column(s): accuracy on the labelled folder(s) given with --evaluate-on)")
    cells = cell_summaries(rows)
    if any(len(c.rows) > 1 for c in cells):
        print(f"\n{'cell':<{width}} {'seeds':>5} {'mean acc':>8} {'std':>6} {'seconds':>8}")
        for c in cells:
            print(f"{c.label:<{width}} {len(c.done):>5} {f(c.mean, '.3f'):>8} {f(c.std, '.3f'):>6} "
                  f"{f(c.wall_seconds, '.0f'):>8}")
    print(f"verdict: {verdict_text}")


def _cmd_compare(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from tlcore.compare import (DEFAULT_STRATEGIES, method_axis, strategy_axis, launch_sweep, resume_sweep,
                                sweep_rows, verdict)
    from tlcore.grid import parse_axis
    from tlcore.report import write_report
    from tlcore.config import RunConfig
    from tlcore.paths import data_home
    from tlcore.worker import run_worker

    store = _store()
    complete = True
    if args.report:
        sweep = args.report
    elif args.resume:
        sweep = args.resume
        again = resume_sweep(store, sweep, runner=_runner(args))
        print(f"comparison {sweep}: {len(again)} run(s) queued again")
        if args.ray is not None:  # also the runs the Compare page queued for Ray
            waiting = [r.id for r in sorted(store.list(sweep=sweep), key=lambda r: (r.created, r.id))
                       if r.status == "queued" and r.runner == _runner(args)]
            complete = "failed" not in _drive_on_ray(store, waiting, args).values()
        else:
            run_worker(store)
            complete = _wait_for_sweep(store, sweep)
    else:
        if not args.config:
            raise TransferLabError("give a run config to compare strategies on, or --report SWEEP_ID",
                                   "e.g. python -m tlcore compare run.json")
        axes = [parse_axis(text) for text in args.vary or []]
        if args.methods:
            axes.insert(0, method_axis(tuple(args.methods.split(","))))
        if args.strategies or not axes:
            axes.insert(0, strategy_axis(tuple(args.strategies.split(",")) if args.strategies else DEFAULT_STRATEGIES))
        base = RunConfig.load(args.config)
        if args.evaluate_on:
            base = replace(base, evaluate_on=tuple(base.evaluate_on) + tuple(args.evaluate_on))
        on_ray = args.ray is not None
        if on_ray and args.background:
            raise TransferLabError("--background and --ray do not go together", "with --ray this command drives the "
                                   "runs and follows them; leave it running (the Compare page shows them too)")
        sweep = launch_sweep(base, store=store, start=args.background, axes=axes, seeds=args.seeds,
                             runner=_runner(args))
        runs = sorted(store.list(sweep=sweep), key=lambda r: (r.created, r.id))
        cells = list(dict.fromkeys(r.name for r in runs))
        print(f"comparison {sweep}: {len(runs)} runs queued ({len(cells)} setting(s) x {args.seeds} seed(s): "
              f"{', '.join(cells)})")
        if args.background:
            print(f"follow it on the Compare page, or later: python -m tlcore compare --report {sweep}")
            return 0
        if on_ray:
            complete = "failed" not in _drive_on_ray(store, [r.id for r in runs], args).values()
        else:
            run_worker(store)  # trains them here, one after the other (or waits for the live background worker)
            complete = _wait_for_sweep(store, sweep)
    rows = sweep_rows(store, sweep)
    _print_sweep(rows, verdict(rows))
    html_path, csv_path, cells_path = write_report(store, sweep, args.out or data_home() / "reports")
    print(f"report: {html_path}\ntable: {csv_path}\ncells: {cells_path}")
    return 0 if complete else EXIT_USER_ERROR


def _wait_for_sweep(store, sweep: str) -> bool:
    from tlcore.compare import wait_for_sweep

    stranded = wait_for_sweep(store, sweep)
    if stranded:
        print(f"error: the worker stopped during comparison {sweep}; {len(stranded)} run(s) did not start: resume "
              f"with `python -m tlcore compare --resume {sweep}`", file=sys.stderr)
    return not stranded


def _existing_folder(target: str) -> Path | None:
    """`target` as a folder if it is one; None for anything else (a run id, or a name no file system takes)."""
    try:
        return Path(target) if Path(target).is_dir() else None
    except OSError:  # e.g. a name too long for the file system
        return None


def _cmd_export(args: argparse.Namespace) -> int:
    from tlcore.export import export_run

    run_dir = _existing_folder(args.run) or Path(_store().get(args.run).run_dir)
    report = export_run(run_dir, args.out, on_step=lambda done, total, step: print(
        f"export step {done + 1} of {total}: {step}", file=sys.stderr, flush=True))
    print(f"exported to {report.folder}: {', '.join(report.files)}")
    print("checked against the PyTorch model: " + ", ".join(f"{k} max logit difference {v:.1e}"
                                                             for k, v in report.max_abs_diff.items()))
    return 0


def _image_files(target: Path) -> list[Path]:
    from tlcore.data.layout import is_hidden

    if target.is_file():
        return [target]
    if not target.is_dir():
        raise TransferLabError(f"no such picture or folder: {target}", "check the path")
    return sorted(p for p in target.rglob("*") if p.is_file() and not any(is_hidden(x) for x in p.relative_to(target).parts))


def _is_text_run(target: str) -> bool:
    """A run folder (or run id) whose model is a text model; export folders and unknown ids are left to Predictor."""
    from tlcore.config import read_json_file
    from tlcore.paths import user_path
    from tlcore.text.model import is_text_model

    folder = user_path(target)
    try:
        if not (folder / "config.json").is_file():
            from tlcore.runs import RunStore, check_run_id

            check_run_id(target)
            folder = Path(RunStore().get(target).run_dir)
        name = (read_json_file(folder / "config.json", "the run's config").get("model") or {}).get("name", "")
    except (OSError, ValueError, TransferLabError, AttributeError):
        return False
    return isinstance(name, str) and is_text_model(name)


def _predict_texts(args: argparse.Namespace) -> int:
    import csv

    from tlcore.paths import user_path
    from tlcore.text_predict import TextPredictor, texts_to_predict

    folder = user_path(args.model)
    if not (folder / "config.json").is_file():
        folder = Path(_store().get(args.model).run_dir)
    if args.cam:
        raise TransferLabError("--cam draws Grad-CAM on pictures", "leave it out for a text run")
    predictor = TextPredictor.from_run(folder)
    texts = texts_to_predict(args.images)
    found = predictor.predict(texts, topk=args.topk)
    for text, top in zip(texts, found):
        shown = text if len(text) <= 70 else text[:67] + "..."
        print(f"{shown!r}: " + ", ".join(f"{c} {p:.1%}" for c, p in top))
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["text", "predicted", "probability", "error"] + [f"top{i + 1}" for i in range(len(found[0]))])
            writer.writerows([text, top[0][0], f"{top[0][1]:.4f}", ""] + [f"{c}:{p:.4f}" for c, p in top]
                             for text, top in zip(texts, found))
        print(f"predictions written to {args.csv}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    import csv

    import numpy as np
    from PIL import Image

    from tlcore.data import load_rgb
    from tlcore.data.images import ImageReadError
    from tlcore.predict import Predictor

    if _is_text_run(args.model):
        return _predict_texts(args)
    predictor = Predictor.resolve(args.model)
    files = _image_files(Path(args.images))
    if args.cam and len(files) == 1:  # one picture: --cam names the overlay file itself
        _check_picture_path(args.cam, "--cam")
    rows = []
    for path in files:
        try:
            image = np.asarray(load_rgb(path))
        except ImageReadError as exc:
            print(f"{path}: skipped ({exc.problem})")
            rows.append([str(path), "", "", exc.problem])
            continue
        top = predictor.predict(image, topk=args.topk)
        print(f"{path}: " + ", ".join(f"{c} {p:.1%}" for c, p in top))
        rows.append([str(path), top[0][0], f"{top[0][1]:.4f}", ""] + [f"{c}:{p:.4f}" for c, p in top])
        if args.cam:
            from tlcore.augment import eval_pipeline, model_view
            from tlcore.explain import grad_cam, overlay

            heat, _ = grad_cam(predictor.model, predictor.groups(), predictor.preprocessing, image)
            picture = model_view(eval_pipeline(predictor.preprocessing)(image=image)["image"], predictor.preprocessing)
            out = Path(args.cam) if len(files) == 1 else Path(args.cam) / f"{path.stem}_cam.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(overlay(picture, heat)).save(out)
            print(f"  Grad-CAM for '{top[0][0]}': {out}")
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "predicted", "probability", "error"] + [f"top{i + 1}" for i in range(args.topk)])
            writer.writerows(rows)
        print(f"predictions written to {args.csv}")
    return 0 if any(r[1] for r in rows) else EXIT_USER_ERROR


def _text_columns(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--text-column", help="texts: the column of the texts (default: found by name, e.g. text)")
    parser.add_argument("--label-column", help="texts: the column of the labels (default: found by name, e.g. label)")


def _path(text: str) -> Path:
    """A path option's value: empty text (which would mean this folder) is refused in one line."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path: give a file or folder name")
    return Path(text)


def _bounded(kind: type, low: float, high: float, *, above: bool = False) -> Callable[[str], float]:
    """An argparse type: a number of this kind within [low, high] (above `low` with `above`: a size limit may be
    tiny but not 0); NaN, infinities, 5,000 digits and the like are refused in one line naming the option
    ("argument --topk: 0 is out of range: use 1 to 1000")."""
    def parse(text: str):
        try:
            value = kind(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a {'whole ' if kind is int else ''}number") from None
        inside = low < value <= high if above else low <= value <= high
        if (isinstance(value, float) and not math.isfinite(value)) or not inside:
            wanted = f"a number above {low:g}, up to {high:g}" if above else f"{low:g} to {high:g}"
            raise argparse.ArgumentTypeError(f"{text[:40]} is out of range: use {wanted}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="a timm model name, e.g. resnet50 or tf_efficientnet_lite0")
    parser.add_argument("--weights", help="a .safetensors or .pth weights file for this model")
    parser.add_argument("--random-init", action="store_true", help="no pretrained weights (much worse; say so)")
    parser.add_argument("--download", action="store_true", help="allow downloading weights from the Hugging Face hub")
    parser.add_argument("--fine", action="store_true", help="finer layer groups (per block instead of per stage)")
    parser.add_argument("--classes", type=_bounded(int, 2, 100_000), default=2, help="number of classes of the new head (default 2)")


def build_parser() -> argparse.ArgumentParser:
    """The `python -m tlcore` argument parser: every command, each option typed and bounded.

    Returns:
        The parser.
    """
    parser = argparse.ArgumentParser(prog="python -m tlcore", description="Transfer Lab engine: transfer learning for image classifiers.")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="inspect and split a data set").add_subparsers(dest="data_command", required=True)
    scan = data.add_parser("scan", help="check every file and print a report")
    scan.add_argument("path", help="a folder with one sub-folder per class (or train/val/test folders), a .zip, or "
                                   "texts: a .csv/.tsv/.jsonl file (a text and a label column) or class folders of .txt")
    scan.add_argument("--json", action="store_true", help="print the full report as JSON")
    _text_columns(scan)
    scan.add_argument("--max-file-mb", type=_bounded(float, 0, 100_000, above=True), help="skip files larger than this without reading them "
                                                        "(default 64, or TRANSFERLAB_MAX_FILE_MB)")
    scan.set_defaults(handler=_cmd_data_scan)

    split = data.add_parser("split", help="make a stratified, seeded train/val/test split and save its manifest")
    split.add_argument("path", help="a folder, .zip or text file, as for `scan`")
    _text_columns(split)
    split.add_argument("--seed", type=_bounded(int, 0, 2**31 - 1), default=0, help="same seed, same split (default 0)")
    split.add_argument("--val", type=_bounded(float, 0, 0.95), default=0.15, help="validation share per class (default 0.15)")
    split.add_argument("--test", type=_bounded(float, 0, 0.95), default=0.15, help="test share per class (default 0.15)")
    split.add_argument("--test-from-val", type=_bounded(float, 0, 1), default=0.5,
                       help="for folders already split without test/: share of val set aside as test (default 0.5)")
    split.add_argument("--out", type=_path, help="where to write the manifest (default: the Transfer Lab data folder)")
    split.set_defaults(handler=_cmd_data_split)

    cache = data.add_parser("cache", help="decode every picture once into the decoded-image cache a run on a GPU "
                                          "reads (runs build it on first use too)")
    cache.add_argument("path", help="a folder or .zip, as for `scan`")
    cache.add_argument("--model", default="tf_efficientnet_lite0", help="the model whose resize size the cache keeps")
    cache.add_argument("--input-size", type=_bounded(int, 8, 4096), help="square input side, as the run's input_size")
    cache.add_argument("--max-gb", type=_bounded(float, 0, 10_000, above=True), default=20.0, help="refuse a cache larger than this (default 20)")
    cache.set_defaults(handler=_cmd_data_cache)

    models = commands.add_parser("models", help="browse pretrained models").add_subparsers(dest="models_command", required=True)
    listing = models.add_parser("list", help="recommended models, or search all of timm's pretrained models")
    listing.add_argument("--search", help="part of a model or family name, e.g. resnet, vit, convnext")
    listing.add_argument("--limit", type=_bounded(int, 1, 10_000), default=40)
    listing.set_defaults(handler=_cmd_models_list)
    rank = models.add_parser("rank", help="rank pretrained models for your pictures in seconds, before training "
                                          "(LogME and a logistic probe on frozen features)")
    rank.add_argument("--data", help="a folder (one sub-folder per class) or a .zip; split with the default seed")
    rank.add_argument("--config", help="instead, a run config: its data, split and input size are used")
    rank.add_argument("--models", help="comma-separated timm names; NAME@random for the same architecture without "
                                       "pretrained weights (default: recommended models with weights here)")
    rank.add_argument("--input-size", type=_bounded(int, 8, 4096), help="square input side (smaller is faster, e.g. 160)")
    rank.add_argument("--json", action="store_true", help="one JSON object per model, as each is scored")
    rank.set_defaults(handler=_cmd_models_rank)
    show = models.add_parser("show", help="a model's facts and its layer groups, stem to head")
    _add_model_arguments(show)
    show.set_defaults(handler=_cmd_models_show)

    augment = commands.add_parser("augment", help="augmentation presets and previews").add_subparsers(
        dest="augment_command", required=True)
    presets = augment.add_parser("presets", help="the presets, each with what it is for")
    presets.set_defaults(handler=_cmd_augment_presets)
    aug_preview = augment.add_parser("preview", help="one picture augmented N times, as a grid image")
    aug_preview.add_argument("image", help="a picture of yours")
    aug_preview.add_argument("--preset", default="light", help="none, light, medium, heavy, photos, aerial, documents, "
                             "microscopy (default light)")
    aug_preview.add_argument("--spec", help="a JSON augmentation spec instead of a preset")
    aug_preview.add_argument("--model", default="tf_efficientnet_lite0", help="whose input size and crop to use")
    aug_preview.add_argument("--n", type=_bounded(int, 1, 64), default=8)
    aug_preview.add_argument("--seed", type=_bounded(int, 0, 2**31 - 1), default=0, help="same seed, same pictures")
    aug_preview.add_argument("--columns", type=_bounded(int, 1, 16), default=4)
    aug_preview.add_argument("--model-view", action="store_true", help="add what the model sees at evaluation")
    aug_preview.add_argument("--out", type=_path, default=Path("augment_preview.png"))
    aug_preview.set_defaults(handler=_cmd_augment_preview)

    train = commands.add_parser("train", help="train a run config (JSON) and evaluate it on the test split")
    train.add_argument("config", help="a run config JSON file (the Train page downloads one)")
    train.add_argument("--background", action="store_true", help="queue it for the background worker instead")
    train.add_argument("--nproc", type=_bounded(int, 1, 64), help="train this one run on N processes with torchrun (one per GPU; "
                                                 "gloo on CPUs); sets distributed.nproc_per_node")
    _add_ray_arguments(train)
    train.set_defaults(handler=_cmd_train)
    worker = commands.add_parser("worker", help="run queued runs one at a time (the app starts this for you)")
    worker.set_defaults(handler=_cmd_worker)
    runs = commands.add_parser("runs", help="list, show, cancel or resume runs").add_subparsers(dest="runs_command",
                                                                                              required=True)
    runs_list = runs.add_parser("list")
    runs_list.add_argument("--status", choices=["queued", "running", "succeeded", "failed", "cancelled"])
    runs_list.set_defaults(handler=_cmd_runs_list)
    for name, handler, text in (("show", _cmd_runs_show, "epochs, events and errors of a run"),
                                ("cancel", _cmd_runs_cancel, "stop a queued or running run"),
                                ("resume", _cmd_runs_resume, "continue a failed or cancelled run from its checkpoint")):
        sub = runs.add_parser(name, help=text)
        sub.add_argument("run_id")
        if name == "show":
            sub.add_argument("--config", action="store_true", help="also print the run's config")
        if name == "resume":
            _add_ray_arguments(sub)
        sub.set_defaults(handler=handler)
    evaluate = commands.add_parser("evaluate", help="score a run's best checkpoint on its held-out test split, or on "
                                                    "another labelled folder")
    evaluate.add_argument("run_id", help="a run id, or a run folder")
    evaluate.add_argument("--data", help="a folder (or zip) with one sub-folder per class of the run: another domain, "
                                         "new pictures; kept with the run under the folder's name")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object (its `accuracy` key: the accuracy)")
    evaluate.add_argument("--progress", help="with --data: append the work done (JSON, one line per batch) to this "
                                             "file as it happens")
    evaluate.set_defaults(handler=_cmd_evaluate)
    lrf = commands.add_parser("lr-find", help="learning-rate range test for a run config")
    lrf.add_argument("config")
    lrf.add_argument("--steps", type=_bounded(int, 5, 10_000), default=60)
    lrf.add_argument("--out", help="write the curve as JSON")
    lrf.add_argument("--progress", help="append each step (JSON, one line per step) to this file as it happens")
    lrf.set_defaults(handler=_cmd_lr_find)
    estimate = commands.add_parser("estimate", help="how long a run config will take here, from a few measured steps")
    estimate.add_argument("config", nargs="+", help="one or more run configs, measured once per distinct step cost "
                          "(configs that differ only in learning rate, schedule, seed or epochs share one)")
    estimate.add_argument("--json", action="store_true", help="print one JSON object per config, one per line")
    estimate.set_defaults(handler=_cmd_estimate)

    compare = commands.add_parser("compare", help="several settings (freeze strategies by default) on the same split "
                                                  "and budget, repeated over seeds, with a paired verdict")
    compare.add_argument("config", nargs="?", help="the shared run config (the varied settings are replaced)")
    compare.add_argument("--vary", action="append", metavar="SETTING=V1,V2",
                         help="a setting to compare, e.g. optimizer.lr=1e-3,3e-4 or augment.preset=light,heavy "
                              "(up to 3; a grid of every combination). Settings: freeze.strategy, freeze.k, "
                              "freeze.lr_spread, freeze.every, optimizer.lr, optimizer.weight_decay, optimizer.name, "
                              "schedule.name, augment.preset, model.name, model.head.dropout, model.head.hidden, "
                              "epochs, batch_size, adapt.method")
    compare.add_argument("--seeds", type=_bounded(int, 1, 20), default=1, help="repeat every setting with seeds 0..N-1 (head "
                                                             "initialisation, batch order, augmentation; never the "
                                                             "split); the table gives mean and std (default 1)")
    compare.add_argument("--strategies", help="comma-separated: feature_extraction, freeze_first_half, gradual, "
                                              "full_discriminative, full (default: all five)")
    compare.add_argument("--methods", help="compare domain-adaptation methods instead (comma-separated: none, adabn, "
                                           "dann, l2sp, mcc, entropy, adabn+mcc), on the config's freeze plan and "
                                           "adapt.target")
    compare.add_argument("--evaluate-on", action="append", metavar="FOLDER",
                         help="also evaluate every run on this labelled folder (e.g. the target domain's test set)")
    compare.add_argument("--background", action="store_true", help="queue the runs and return")
    compare.add_argument("--resume", metavar="SWEEP_ID", help="run a comparison's failed and cancelled runs again")
    compare.add_argument("--report", metavar="SWEEP_ID", help="print the table and write the report of a comparison")
    compare.add_argument("--out", type=_path, help="folder for the HTML report and CSV (default: data folder/reports)")
    _add_ray_arguments(compare)
    compare.set_defaults(handler=_cmd_compare)

    export = commands.add_parser("export", help="a finished run as safetensors, TorchScript, ONNX and a model card")
    export.add_argument("run", help="a run id or run folder")
    export.add_argument("out", type=_path, help="the export folder to write")
    export.set_defaults(handler=_cmd_export)
    predict = commands.add_parser("predict", help="top-k classes for pictures, with the run's own preprocessing")
    predict.add_argument("model", help="a run id, a run folder, or an export folder")
    predict.add_argument("images", help="a picture or a folder of pictures")
    predict.add_argument("--topk", type=_bounded(int, 1, 1000), default=5)
    predict.add_argument("--csv", help="write the predictions to this CSV file")
    predict.add_argument("--cam", help="write a Grad-CAM overlay (a file for one picture, a folder for several)")
    predict.set_defaults(handler=_cmd_predict)

    freeze = commands.add_parser("freeze", help="freeze plans").add_subparsers(dest="freeze_command", required=True)
    fshow = freeze.add_parser("show", help="which groups train when, with their learning-rate scales")
    _add_model_arguments(fshow)
    fshow.add_argument("--strategy", default="feature_extraction", choices=sorted(STRATEGIES))
    fshow.add_argument("--k", type=_bounded(int, 0, 10_000), help="freeze_first_k: groups kept frozen (default: half)")
    fshow.add_argument("--every", type=_bounded(int, 1, 1000), default=1, help="gradual: epochs between unfreezing one more group")
    fshow.add_argument("--head-epochs", type=_bounded(int, 1, 1000), default=1, help="fine_tune: head-only epochs before unfreezing all")
    fshow.add_argument("--lr-spread", type=_bounded(float, 1, 1e6), help="head lr / stem lr (discriminative learning rates; default 1, "
                                                       "fine_tune 10)")
    fshow.add_argument("--train-bn", action="store_true", help="update BatchNorm statistics in frozen groups")
    fshow.add_argument("--epochs", type=_bounded(int, 1, 1000), default=10, help="how many epochs to show")
    fshow.set_defaults(handler=_cmd_freeze_show)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command.

    Args:
        argv: the arguments (default: sys.argv[1:]).

    Returns:
        The exit status: 0 done, 1 a problem the user can fix (one `error:` line), 2 a usage error.
    """
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    if handler in (_cmd_train, _cmd_worker, _cmd_lr_find, _cmd_evaluate, _cmd_compare, _cmd_estimate):
        from tlcore.runtime import tune_allocator

        tune_allocator()  # a process that trains or evaluates: keep memory mapped (3x faster on CPU)
    _OPENED.clear()
    try:
        return handler(args)
    except TransferLabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a path the user gave: too long, unreadable, on a full disk
        name = str(exc.filename or "")
        shown = f" {name}" if name and len(name) <= 200 else " that path" if name else ""
        print(f"error: cannot use{shown}: {exc.strerror or exc}: check the path, its permissions and the free disk "
              "space", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as exc:  # noqa: BLE001 - a bug: one line here, the traceback in a log
        log = _log_bug()
        print(f"error: unexpected {type(exc).__name__} (a bug in Transfer Lab; details in {log})", file=sys.stderr)
        return EXIT_USER_ERROR
    finally:
        _say_store_notes()


def _log_bug() -> str:
    import traceback

    from tlcore.paths import data_home

    try:
        path = data_home() / "errors.log"
        with path.open("a") as fh:
            fh.write(traceback.format_exc() + "\n")
        return str(path)
    except OSError:
        return "no log: it could not be written"
