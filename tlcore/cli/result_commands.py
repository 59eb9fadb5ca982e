"""`evaluate`, `export` and `predict`: what a finished run is used for."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tlcore.errors import TransferLabError
from tlcore.cli.data_commands import check_picture_path
from tlcore.cli.shared import EXIT_USER_ERROR, existing_folder, open_store

__all__ = [
    "cmd_evaluate",
    "cmd_export",
    "cmd_predict",
]


def cmd_evaluate(args: argparse.Namespace) -> int:
    """`evaluate ID [--data FOLDER]`: the test split's (or another folder's) metrics.

    Args:
        args: the command's parsed options (see `parser`).

    Returns:
        The exit status: 0 done, `EXIT_USER_ERROR` when the work did not succeed.
    """
    from tlcore.results.evaluate import evaluate_folder, evaluate_run

    given = existing_folder(args.run_id)
    if given is not None and (given / "config.json").is_file():  # a run folder (e.g. of a multi-node torchrun)
        run_dir, run_id = str(given), given.name
    else:
        run = open_store().get(args.run_id)
        run_dir, run_id = run.run_dir, run.id
    if args.data:
        def progress(phase: str, done: int, total: int) -> None:
            with open(args.progress, "a") as fh:  # one JSON line per batch, for a page that follows it
                fh.write(json.dumps({"phase": phase, "done": done, "total": total}) + "\n")

        evaluation, folder = evaluate_folder(run_dir, args.data, on_progress=progress if args.progress else
                                             lambda *a: None)
        where = f"{evaluation.n} {_things(run_dir)} of {args.data}"
        left_out = _left_out_of(run_dir, args.data)  # rows of the file not scored are said, by reason
    else:
        evaluation, folder = evaluate_run(run_dir), Path(run_dir)
        where = f"{evaluation.n} held-out {evaluation.split} {_things(run_dir)}"
        left_out = ""
    if args.json:
        print(json.dumps({**evaluation.to_dict(), "run_id": run_id, "predictions": str(folder / "predictions.csv"),
                          "left_out": left_out}))
        return 0
    print(f"run {run_id} on {where}: accuracy {evaluation.accuracy:.3f}, "
          f"balanced accuracy {evaluation.balanced_accuracy:.3f}")
    if left_out:
        print(f"  not scored: {left_out}")
    width = max(len(c) for c in evaluation.classes)
    print(f"  {'class':<{width}}  precision  recall     f1  support")
    for c in evaluation.per_class:
        print(f"  {c.label:<{width}}  {c.precision:>9.3f}  {c.recall:>6.3f}  {c.f1:>5.3f}  {c.support:>7}")
    print("confusion matrix (rows: true, columns: predicted):")
    for label, row in zip(evaluation.classes, evaluation.confusion):
        print(f"  {label:<{width}}  " + " ".join(f"{v:>5}" for v in row))
    print(f"predictions: {folder / 'predictions.csv'}")
    return 0


def _left_out_of(run_dir: str, data: str) -> str:
    """The items of `data` the evaluation could not score, counted by reason, read as the run reads its data."""
    from dataclasses import replace

    from tlcore.config import RunConfig
    from tlcore.modality import of_config

    config = RunConfig.load(Path(run_dir) / "config.json")
    return of_config(config).left_out_words(replace(config.data, source=data))


def cmd_export(args: argparse.Namespace) -> int:
    """`export ID OUT`: safetensors, TorchScript, ONNX and a model card, each checked.

    Args:
        args: the command's parsed options (see `parser`).

    Returns:
        The exit status: 0 done, `EXIT_USER_ERROR` when the work did not succeed.
    """
    from tlcore.results.export import export_run

    from tlcore.results.artifacts import ADAPTED, BEST

    run_dir = existing_folder(args.run) or Path(open_store().get(args.run).run_dir)
    report = export_run(run_dir, args.out, checkpoint=ADAPTED if args.adapted else BEST, on_step=lambda done, total, step: print(
        f"export step {done + 1} of {total}: {step}", file=sys.stderr, flush=True))
    print(f"exported to {report.folder}: {', '.join(report.files)}")
    print("checked against the PyTorch model: " + ", ".join(f"{k} max logit difference {v:.1e}"
                                                             for k, v in report.max_abs_diff.items()))
    return 0


def _modality_of(target: str):
    """The kind of data of an export folder, a run folder or a run id (pictures when it cannot be read: loading
    it then says why)."""
    from tlcore.modality import for_model
    from tlcore.results.predict import model_name_of

    return for_model(model_name_of(target) or "")


def _things(run_dir: str) -> str:
    """What the run classifies, in words: "pictures", "texts"..."""
    return _modality_of(str(run_dir)).items_word


MAX_EXPLAINED_TEXTS = 50


def _predict_texts(args: argparse.Namespace) -> int:
    import csv

    from tlcore.core.paths import user_path
    from tlcore.results.text_predict import TextPredictor, texts_to_predict

    folder = user_path(args.model)
    if not (folder / "config.json").is_file():
        folder = Path(open_store().get(args.model).run_dir)
    if args.cam:
        raise TransferLabError("--cam draws Grad-CAM on pictures", "leave it out for a text run; --explain shows "
                               "the words behind a text's class")
    from tlcore.results.artifacts import is_export

    predictor = TextPredictor.from_export(folder) if is_export(folder) else TextPredictor.from_run(folder)
    texts = texts_to_predict(args.images)
    if texts.skipped:  # rows that held no text are said, not left out without a word
        print(f"note: {texts.skipped} row(s) of {Path(args.images).name} held no text and are not classified",
              file=sys.stderr)
    if args.explain and len(texts) > MAX_EXPLAINED_TEXTS:
        raise TransferLabError(f"--explain takes one pass per word: {len(texts)} texts are too many to explain "
                               f"(at most {MAX_EXPLAINED_TEXTS})", "explain a few texts, or leave --explain out")
    found = predictor.predict(texts, topk=args.topk)
    for text, top in zip(texts, found):
        shown = text if len(text) <= 70 else text[:67] + "..."
        print(f"{shown!r}: " + ", ".join(f"{c} {p:.1%}" for c, p in top))
        if args.explain and text.strip():
            why = predictor.explain(text)
            supporting, opposing = why.strongest()
            words = lambda pairs: ", ".join(f"{w!r} {100 * v:+.1f}" for w, v in pairs) or "none"  # noqa: E731
            print(f"  why {why.label} (points lost without the word): for it {words(supporting)}; against it "
                  f"{words(opposing)}")
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["text", "predicted", "probability", "error"] + [f"top{i + 1}" for i in range(len(found[0]))])
            writer.writerows([text, top[0][0], f"{top[0][1]:.4f}", ""] + [f"{c}:{p:.4f}" for c, p in top]
                             for text, top in zip(texts, found))
        print(f"predictions written to {args.csv}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """`predict MODEL PICTURES`: the top classes of pictures (or texts) with the run's preprocessing.

    Args:
        args: the command's parsed options (see `parser`).

    Returns:
        The exit status: 0 done, `EXIT_USER_ERROR` when the work did not succeed.
    """
    return _PREDICT.get(_modality_of(args.model).key, _predict_items)(args)


def _predict_pictures(args: argparse.Namespace) -> int:
    import csv

    import numpy as np
    from PIL import Image

    from tlcore.results.artifacts import ADAPTED, BEST
    from tlcore.data import load_rgb
    from tlcore.data.images import ImageReadError
    from tlcore.modality.pictures import picture_files
    from tlcore.results.predict import Predictor

    if args.explain:
        raise TransferLabError("--explain shows the words behind a text's class", "for pictures, --cam FILE draws "
                               "where the model looks (Grad-CAM)")
    predictor = Predictor.resolve(args.model, ADAPTED if args.adapted else BEST)
    files = picture_files(Path(args.images))
    if args.cam and len(files) == 1:  # one picture: --cam names the overlay file itself
        check_picture_path(args.cam, "--cam")
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
            from tlcore.inputs.augment import eval_pipeline, model_view
            from tlcore.results.explain import grad_cam, overlay

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


def _predict_items(args: argparse.Namespace) -> int:
    """Any kind of data without options of its own: what was given, read by the model's modality, classified."""
    import csv

    from tlcore.results.predict import classify

    for option, value in (("--cam", args.cam), ("--explain", args.explain), ("--adapted", args.adapted)):
        if value:
            raise TransferLabError(f"{option} is not available for this kind of model", f"leave {option} out")
    found = classify(args.model, args.images, topk=args.topk)
    for name, top in found:
        print(f"{name[:70]}: " + ", ".join(f"{c} {p:.1%}" for c, p in top))
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["item", "predicted", "probability", "error"] + [f"top{i + 1}" for i in range(args.topk)])
            writer.writerows([name, top[0][0], f"{top[0][1]:.4f}", ""] + [f"{c}:{p:.4f}" for c, p in top]
                             for name, top in found)
        print(f"predictions written to {args.csv}")
    return 0


_PREDICT = {"images": _predict_pictures, "texts": _predict_texts}  # kinds with options of their own (--cam, --explain)
