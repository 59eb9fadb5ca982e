"""Held-out evaluation of a finished run: on the test split only, which never trained or chose an epoch."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from tlcore.adaptation.adapt import adabn
from tlcore.spec.adapt_spec import uses_adabn
from tlcore.errors import TransferLabError
from tlcore.core.files import atomic_write
from tlcore.inputs.inference import outputs
from tlcore.core.runtime import Runtime, select_runtime
from tlcore.results.artifacts import ADAPTED, BEST, EVALUATION, EVALUATIONS, PREDICTIONS, TrainedRun, load_trained
from tlcore.core.run_files import folder_evaluation_name
from tlcore.modality import of_built

__all__ = ["ClassMetrics", "Evaluation", "metrics_from_predictions", "evaluate_run", "evaluate_folder",
           "score_labelled_target",
           "class_probabilities"]


@dataclass(frozen=True)
class ClassMetrics:
    """One class's precision, recall, F1 and support."""
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class Evaluation:
    """A model's results on held-out pictures: accuracy, balanced accuracy, per-class metrics, confusion
    matrix and worst mistakes."""
    split: str
    n: int
    accuracy: float
    balanced_accuracy: float
    classes: list[str]
    per_class: list[ClassMetrics]
    confusion: list[list[int]]  # rows: true class, columns: predicted class
    worst: list[dict]  # the most confidently wrong (highest loss) pictures first
    source: str = ""  # for an evaluation on another folder: that folder

    def to_dict(self) -> dict:
        """The evaluation as plain data (`evaluation.json`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Evaluation":
        """An evaluation back from `to_dict`'s data.

        Args:
            data: what `to_dict` gave.
        """
        return cls(**{**data, "per_class": [ClassMetrics(**c) for c in data["per_class"]]})


def metrics_from_predictions(labels: np.ndarray, probabilities: np.ndarray, classes: list[str], paths: list[str],
                             split: str = "test", worst_n: int = 12) -> Evaluation:
    """Accuracy, balanced accuracy, per-class precision/recall/F1, confusion matrix, worst mistakes.

    Args:
        labels: the true class index per picture.
        probabilities: the predicted class probabilities, one row per picture.
        classes: the class names, by index.
        paths: the pictures, for the worst mistakes.
        split: what was scored ("test", "folder").
        worst_n: how many mistakes to keep.

    Returns:
        The evaluation.
    """
    predicted = probabilities.argmax(1)
    k = len(classes)
    confusion = np.zeros((k, k), dtype=int)
    np.add.at(confusion, (labels, predicted), 1)
    per_class = []
    recalls = []
    for i, label in enumerate(classes):
        tp = confusion[i, i]
        support = int(confusion[i].sum())
        precision = tp / confusion[:, i].sum() if confusion[:, i].sum() else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append(ClassMetrics(label, float(precision), float(recall), float(f1), support))
        if support:
            recalls.append(recall)
    losses = -np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-12, 1.0))
    wrong = np.flatnonzero(predicted != labels)
    worst = [{"path": paths[i], "label": classes[labels[i]], "predicted": classes[predicted[i]],
              "confidence": float(probabilities[i, predicted[i]]), "loss": float(losses[i])}
             for i in wrong[np.argsort(-losses[wrong])][:worst_n]]
    return Evaluation(split=split, n=int(len(labels)), accuracy=float((predicted == labels).mean()) if len(labels) else 0.0,
                      balanced_accuracy=float(np.mean(recalls)) if recalls else 0.0, classes=list(classes),
                      per_class=per_class, confusion=confusion.tolist(), worst=worst)


def _runtime_here(config) -> Runtime:
    """The run's device when this machine has it; a run trained on a GPU (CUDA or Apple) still evaluates on a CPU."""
    try:
        return select_runtime(config.device, config.precision, config.num_workers)
    except TransferLabError:
        return select_runtime("auto", config.precision, config.num_workers)


def _quiet(phase: str, done: int, total: int) -> None:
    pass


def _counted(batches: Iterable, phase: str, total: int, on_progress: Callable[[str, int, int], None]) -> Iterator:
    """The batches as they are, telling `on_progress(phase, pictures done, total)` after each."""
    done = 0
    for x, y in batches:
        yield x, y
        done += len(y)
        on_progress(phase, done, total)


def class_probabilities(trained: TrainedRun, items: list[tuple[Path, int]], *, own_statistics: bool = False,
                        on_progress: Callable[[str, int, int], None] = _quiet,
                        read_from: tuple[str, str] | None = None) -> np.ndarray:
    """The run's model on these pictures (or texts): each one's class probabilities.

    Args:
        trained: the run, its checkpoint loaded.
        items: (path, label) pairs; the labels are not used.
        own_statistics: AdaBN: BatchNorm statistics measured on these pictures first (labels unused).
        on_progress: hears (phase, done, total): "adapting BatchNorm", then "classifying".
        read_from: items of another data set: (its root, its source) (None: the run's own data).

    Returns:
        One row per item, one column per class of the run.
    """
    config, manifest, built = trained
    runtime = _runtime_here(config)
    model = built.model.to(runtime.device)
    if runtime.channels_last:
        model.to(memory_format=torch.channels_last)
    root, source = read_from or (manifest.root, config.data.source)  # another data set, or the run's own
    loader = of_built(built).eval_batches(built, items, root=root, source=source, config=config, runtime=runtime)
    if own_statistics:  # AdaBN: the pictures are normalised by their own domain's statistics (labels unused)
        adabn(model, _counted(loader, "adapting BatchNorm", len(items), on_progress), runtime.device)
    return torch.cat([logits.softmax(1).cpu() for logits, _ in
                      outputs(model, _counted(loader, "classifying", len(items), on_progress), runtime)]).numpy()


def _score(trained: TrainedRun, items: list[tuple[Path, int]], split: str, out_dir: Path, source: str = "",
           own_statistics: bool = False, on_progress: Callable[[str, int, int], None] = _quiet,
           read_from: tuple[str, str] | None = None) -> Evaluation:
    """The run's model on these pictures: metrics to evaluation.json, every picture's probabilities to
    predictions.csv, both in `out_dir`. `own_statistics`: BatchNorm statistics measured on these pictures first.
    `on_progress(phase, done, total)` follows the pictures read ("adapting BatchNorm", then "classifying")."""
    manifest = trained.manifest
    probabilities = class_probabilities(trained, items, own_statistics=own_statistics, on_progress=on_progress,
                                        read_from=read_from)
    labels = np.array([y for _, y in items])
    paths = [str(path) for path, _ in items]
    evaluation = metrics_from_predictions(labels, probabilities, manifest.classes, paths, split=split)
    evaluation.source = source
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / EVALUATION, lambda tmp: tmp.write_text(json.dumps(evaluation.to_dict(), indent=1)))

    def write_predictions(tmp: Path) -> None:
        with tmp.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "label", "predicted", "confidence"] + [f"p_{c}" for c in manifest.classes])
            for path, label, probs in zip(paths, labels, probabilities):
                top = int(probs.argmax())
                writer.writerow([path, manifest.classes[label], manifest.classes[top], f"{probs[top]:.4f}"]
                                + [f"{v:.4f}" for v in probs])

    atomic_write(out_dir / PREDICTIONS, write_predictions)
    return evaluation


def evaluate_run(run_dir: str | Path, split: str = "test", checkpoint: str = BEST) -> Evaluation:
    """Score a finished run on its held-out pictures, which never trained it nor chose its best epoch.

    Args:
        run_dir: the run's folder.
        split: which part of the run's own split manifest: "test" (default) or "val".
        checkpoint: `BEST` (default) or `LAST`.

    Returns an `Evaluation` (accuracy, balanced accuracy, per-class precision/recall/F1, confusion matrix,
    worst mistakes) and writes it to evaluation.json, with every picture's probabilities in predictions.csv.
    Raises `TransferLabError` when the run or its split cannot be used.
    """
    run_dir = Path(run_dir)
    trained = load_trained(run_dir, checkpoint)
    items = trained.manifest.files(split)
    if not items:
        raise TransferLabError(f"the split has no {split} images", "make a split with a test share above 0")
    return _score(trained, items, split, run_dir)




def _some(names: list[str], shown: int = 8) -> str:
    """A list of names for one line: the first few and how many more (5,000 labels made a 34,095-character line)."""
    names = [str(n)[:40] for n in names]
    return ", ".join(names[:shown]) + (f" and {len(names) - shown:,} more" if len(names) > shown else "")


def evaluate_folder(run_dir: str | Path, source: str | Path, checkpoint: str = BEST,
                    on_progress: Callable[[str, int, int], None] = _quiet,
                    own_statistics: bool | None = None) -> tuple[Evaluation, Path]:
    """Score a finished run on another labelled folder (or zip): a new domain, a new camera, new data.

    The folder's class sub-folders must be the run's classes, no more, no fewer. The result is kept with
    the run under the folder's name (`evaluations/<name>/`), so a run can hold many; returns it and its folder.
    `on_progress(phase, done, total)` follows the work: "reading the folder", then the pictures scored.
    Raises `TransferLabError` naming the classes that do not match, or what is wrong with the folder.

    Args:
        run_dir: the run folder.
        source: the labelled folder, zip or (text runs) file.
        checkpoint: which weights of the run.
        on_progress: see above.
        own_statistics: an AdaBN run normalises the folder by the folder's own BatchNorm statistics (None: the
            default for AdaBN runs); False keeps the checkpoint's (with `ADAPTED`: the target pictures').

    Returns:
        (the evaluation, the folder it was written to).
    """
    run_dir = Path(run_dir)
    on_progress("loading the model", 0, 1)
    trained = load_trained(run_dir, checkpoint)
    config, manifest = trained.config, trained.manifest
    on_progress("reading the folder", 0, 1)
    modality = of_built(trained.built)
    report = modality.read(str(source), config.data)  # the run's kind of data, with the run's columns
    extra = sorted(set(report.classes) - set(manifest.classes))
    missing = sorted(set(manifest.classes) - set(report.classes))
    if extra or missing:
        parts = ([f"not in the run: {_some(extra)}"] if extra else []) + (
            [f"missing: {_some(missing)}"] if missing else [])
        raise TransferLabError(f"the classes of {Path(str(source)).name} do not match the run's ({'; '.join(parts)})",
                               f"give a folder with one sub-folder per class of the run: {_some(manifest.classes)}")
    if not report.images:
        raise TransferLabError(f"{Path(str(source)).name} has no readable {modality.item_word}", "check the folder")
    root = Path(report.root)
    items = [(root / r.path, manifest.classes.index(r.label)) for r in report.images]
    out_dir = run_dir / EVALUATIONS / folder_evaluation_name(source)
    # an AdaBN run normalises every domain by that domain's own statistics: the source's in training, here the
    # folder's (Li et al. 2016 measure them on the target pictures being classified)
    own = uses_adabn(config.adapt.method) if own_statistics is None else own_statistics
    return _score(trained, items, "folder", out_dir, str(source), own_statistics=own, on_progress=on_progress,
                  read_from=(report.root, str(getattr(report, "source", report.root)))), out_dir


def score_labelled_target(run_dir: str | Path, config) -> tuple[Evaluation, Path]:
    """A finished run scored on its few labelled target pictures (`adapt.labelled`), as it will be used on the
    target: an AdaBN run with its adapted weights (the BatchNorm statistics of all the unlabelled target
    pictures, as during training when `early_stopping.metric` is labelled_acc), not with statistics of these few.

    Args:
        run_dir: the run folder.
        config: the run's config (`RunConfig`), naming the labelled pictures.

    Returns:
        (the evaluation, the folder it was written to), kept with the run under the folder's name.

    Raises:
        TransferLabError: the folder cannot be read, or its classes do not match the run's.
    """
    if uses_adabn(config.adapt.method):
        return evaluate_folder(run_dir, config.adapt.labelled, checkpoint=ADAPTED, own_statistics=False)
    return evaluate_folder(run_dir, config.adapt.labelled)
