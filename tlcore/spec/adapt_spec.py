"""Domain adaptation as the run config states it: the methods, their settings and checks, and the target pictures.

Plain data and file reading only (no torch), so the app's pages and the store-only commands can read and check a
config without loading the engine; `tlcore.adaptation.adapt` holds what the methods do to a model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from tlcore.data import ImageReadError, decode_image, resolve_source
from tlcore.data.images import read_picture_file
from tlcore.data.layout import IMAGE_SUFFIXES, is_hidden, walk_files
from tlcore.errors import TransferLabError
from tlcore.core.schema import setting

__all__ = ["METHODS", "NEEDS_TARGET", "TRAINS_THE_BACKBONE", "DEFAULT_WEIGHTS", "HEAD_ONLY_WEIGHTS", "MIN_TARGET", "LABELLED_USES",
           "AdaptConfig", "AdaptError", "TargetSet", "check_adapt", "scan_target", "scan_labelled_target", "check_labelled_classes", "labelled_repeats", "uses_adabn", "picture_hashes", "labelled_overlap_notes", "is_readable_picture"]

# One sentence per method, for the UI and the CLI.
METHODS = {
    "none": "No adaptation: the model learns from the labelled pictures only.",
    "adabn": "Each domain is normalised by its own BatchNorm statistics (AdaBN, Li et al. 2016): the source's while "
             "training, the target's when classifying target pictures; no labels, no extra training; for models with "
             "BatchNorm.",
    "dann": "A domain classifier learns to tell source features from target features while a gradient-reversal "
            "layer trains the backbone to make them indistinguishable (DANN, Ganin and Lempitsky 2015).",
    "l2sp": "The fine-tuned layers are pulled towards their pretrained values, so they keep what transfers "
            "(L2-SP, Li et al. 2018); needs no target pictures.",
    "mcc": "Predictions on the target pictures are pushed to be confident without confusing classes with each other "
           "(Minimum Class Confusion, Jin et al. 2020).",
    "entropy": "Predictions on the target pictures are pushed to be confident (entropy minimisation, Grandvalet and "
               "Bengio 2005).",
    "adabn+mcc": "AdaBN and MCC together: each domain normalised by its own BatchNorm statistics, and the "
                 "predictions on the target pictures kept confident and distinct.",
}
NEEDS_TARGET = ("adabn", "dann", "mcc", "entropy", "adabn+mcc")
TRAINS_THE_BACKBONE = ("dann", "l2sp")  # nothing to do when only the new head trains
DEFAULT_WEIGHTS = {"dann": 1.0, "mcc": 1.0, "entropy": 0.1, "l2sp": 0.01, "adabn+mcc": 1.0}  # papers' and TLlib's
# With a frozen backbone only the head can move, over few steps: MCC needs a larger share of the loss to act
# (bench/domain_shift.py, head-only on the chalk shapes: weight 1 +0 points, 3 +2.5, 10 +7; the other way +5 at both).
HEAD_ONLY_WEIGHTS = {"mcc": 10.0, "adabn+mcc": 10.0}
MIN_TARGET = 2
LABELLED_USES = {
    "choose": "keep them out of training and score each run on them, so a comparison chooses by them",
    "train": "train on them with your labelled pictures (the unlabelled target still goes to the method)",
}


class AdaptError(TransferLabError):
    """An adaptation setting that cannot be used (unknown method, a target that cannot be read, a misfit)."""


def uses_adabn(method: str) -> bool:
    """Source statistics while training, each domain's own statistics when classifying it.

    Args:
        method: an `adapt.method` name, e.g. "adabn" or "adabn+mcc".

    Returns:
        True when the method uses AdaBN's statistics.
    """
    return method in ("adabn", "adabn+mcc")


@dataclass(frozen=True)
class AdaptConfig:
    """The run's domain adaptation: method, target pictures, loss weight (plain data, part of the run config)."""
    method: str = setting("none", label="Domain-adaptation method", options=tuple(METHODS), axis="adapt",
                          try_values=["none", "adabn", "mcc"], group="adapt", modalities=("images",),
                          help="How the model is made to work on target pictures that look different.")
    target: str = setting("", label="Target pictures (unlabelled)", group="adapt", modalities=("images",),
                          help="A folder or zip of pictures from the domain the model will meet; sub-folder names "
                               "are ignored.")
    weight: float | None = setting(None, label="Weight of the adaptation method's loss (none: its default)",
                                   low=0.0, high=100.0, axis="weight", try_values="none, 1, 10", cost=False, unset="its default",
                                   group="adapt", modalities=("images",),
                                   help="The method's loss weight (l2sp: its strength); empty: the method's default.")
    temperature: float = setting(2.5, label="MCC temperature", high=100.0, cost=False, group="adapt",
                                 modalities=("images",), help="mcc: softens the target predictions (Jin et al.).")
    max_target: int = setting(5000, label="Most target pictures used", low=MIN_TARGET, high=1_000_000, group="adapt",
                              modalities=("images",),
                              help="At most this many target pictures are used (drawn evenly, in file order).")
    # A few labelled target pictures (a folder or zip, sub-folders named as the data's classes, e.g. 5 per class),
    # kept apart from any labelled target test: "train" adds them to the training pictures; "choose" trains
    # without them and scores the run on them, so a comparison chooses by them instead of the label-free score.
    labelled: str = setting("", label="Labelled target pictures (a few)", group="adapt", modalities=("images",),
                            help="A folder or zip with a sub-folder per class, e.g. 5 pictures per class.")
    # "train" helped head-only runs, hurt fine-tuning (README)
    labelled_use: str = setting("choose", label="Use of the labelled target pictures", options=tuple(LABELLED_USES),
                                group="adapt", modalities=("images",),
                                help="choose: kept out of training, runs scored on them; train: trained on.")
    # With "train", the few labelled pictures are repeated to make up this share of each epoch (0: each once):
    # a handful among hundreds barely moves a model, so semi-supervised adaptation balances them in each batch
    # (Saito et al. 2019); repeated pictures are augmented anew each time.
    labelled_share: float = setting(0.25, label="Share of each epoch for the labelled target pictures", low=0.0,
                                    high=0.9, group="adapt", modalities=("images",),
                                    help="train: they are repeated to make up this share of each epoch (0: once).")

    @property
    def labelled_kept_apart(self) -> bool:
        """Labelled target pictures are given and kept out of training, to score runs on (use "choose")."""
        return bool(self.labelled.strip()) and self.labelled_use == "choose"

    def loss_weight(self, head_only: bool = False) -> float:
        """The weight given, or the method's default (for some methods, another one when only the head trains).

        Args:
            head_only: only the new head trains in this run.

        Returns:
            The loss weight.
        """
        if self.weight is not None:
            return self.weight
        return (head_only and HEAD_ONLY_WEIGHTS.get(self.method)) or DEFAULT_WEIGHTS.get(self.method, 0.0)


def check_adapt(adapt: AdaptConfig) -> None:
    """What can be checked without the model: the method, its target and its numbers.

    Args:
        adapt: the run's adaptation settings.

    Raises:
        AdaptError: an unknown method, a method without its target pictures, or a number out of range.
    """
    if adapt.method not in METHODS:
        raise AdaptError(f"invalid adapt.method: {adapt.method!r}", f"use one of {', '.join(METHODS)}")
    if adapt.method in NEEDS_TARGET and not adapt.target.strip():
        raise AdaptError(f"adapt.method {adapt.method} needs target pictures",
                         "set adapt.target to a folder or zip of pictures from the domain the model will meet")
    if adapt.weight is not None and not 0 <= adapt.weight <= 100:
        raise AdaptError(f"invalid adapt.weight: {adapt.weight!r}", "use 0 to 100 (empty: the method's default)")
    if not 0 < adapt.temperature <= 100:
        raise AdaptError(f"invalid adapt.temperature: {adapt.temperature!r}", "use a positive number, e.g. 2.5")
    if not MIN_TARGET <= adapt.max_target <= 1_000_000:
        raise AdaptError(f"invalid adapt.max_target: {adapt.max_target!r}", "use 2 or more, e.g. 5000")
    if not 0 <= adapt.labelled_share <= 0.9:
        raise AdaptError(f"invalid adapt.labelled_share: {adapt.labelled_share!r}",
                         "use 0 (each labelled picture once) to 0.9, e.g. 0.25")
    if adapt.labelled_use not in LABELLED_USES:
        raise AdaptError(f"invalid adapt.labelled_use: {adapt.labelled_use!r}", f"use one of {', '.join(LABELLED_USES)}")


def labelled_repeats(labelled: int, source: int, share: float) -> int:
    """How many times each labelled target picture goes into an epoch so they make up `share` of it.

    Args:
        labelled: labelled target pictures; source: the data's training pictures; share: the wanted share.

    Returns:
        1 or more.
    """
    if not labelled or share <= 0:
        return 1
    return max(1, round(share * source / ((1 - share) * labelled)))


def scan_labelled_target(source: str, classes: list[str]) -> list[tuple[Path, int, str]]:
    """The labelled target pictures: every readable picture under a folder (or zip) of class sub-folders.

    Args:
        source: the folder or zip; its sub-folders are named as the data's classes (not every class is needed).
        classes: the data's classes, in the order of the run's class indexes.

    Returns:
        (path, class index, content hash) of each readable picture, in file order.

    Raises:
        AdaptError: a sub-folder names no class of the data, or no picture can be read.
        DatasetError: the folder or zip cannot be read at all.
    """
    root = resolve_source(source)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not is_hidden(p.name))
    unknown = [p.name for p in folders if p.name not in classes]
    if unknown:
        raise AdaptError(f"the labelled target pictures {source} have class folders the data does not have: "
                         f"{', '.join(unknown)[:200]}", f"name the sub-folders as the data's classes: {', '.join(classes)[:200]}")
    found = []
    for folder in folders:
        for path in walk_files(folder):
            digest = _readable(path, root) if path.suffix.lower() in IMAGE_SUFFIXES else None
            if digest:
                found.append((path, classes.index(folder.name), digest))
    if not found:
        raise AdaptError(f"the labelled target {source} has no readable picture in class sub-folders",
                         "put a few pictures of each class in a sub-folder named as the class")
    return found


def check_labelled_classes(found: list[tuple[Path, int, str]], classes: list[str], use: str, source: str) -> None:
    """With `labelled_use` "choose" every run is scored on the labelled target pictures, which needs a picture of
    every class (the score is per class); to train on, a few classes are enough.

    Args:
        found: what `scan_labelled_target` gave; classes: the data's classes; use: `adapt.labelled_use`;
        source: the folder, for the message.

    Raises:
        AdaptError: "choose", and some class has no labelled target picture (they are named).
    """
    missing = [c for i, c in enumerate(classes) if not any(label == i for _path, label, _sha in found)]
    if use == "choose" and missing:
        raise AdaptError(f"the labelled target pictures {source} have no picture of {', '.join(missing)[:200]}; "
                         "to choose between runs they are scored on every class",
                         "add a few pictures of each class, or use them to train on (labelled_use train)")


def is_readable_picture(path: Path) -> bool:
    """Whether a file opens as a picture (a regular file under the size limit, decoded at a reduced scale).

    Args:
        path: the file.

    Returns:
        True when it can be read.
    """
    return _readable(path) is not None


def _readable(path: Path, inside: Path | None = None) -> str | None:
    """The picture's content hash, or None when it cannot be read as a picture (or is a link out of `inside`)."""
    try:
        data = read_picture_file(path, inside=inside)
        decode_image(data, draft=1)
    except ImageReadError:
        return None
    return hashlib.sha256(data).hexdigest()


# -- the target pictures -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TargetSet:
    """The readable target pictures of an adaptation, in file order, with their hashes and how many were skipped."""
    root: str
    paths: list[Path]  # readable pictures, in file order
    sha256: list[str]
    skipped: int

    def items(self) -> list[tuple[Path, int]]:
        """As a data set's items: every label 0, which nothing reads (the target has no labels)."""
        return [(p, 0) for p in self.paths]


def scan_target(source: str, max_pictures: int = 5000) -> TargetSet:
    """Every readable picture under a folder (or zip), at any depth; folder names are not labels.

    Raises `AdaptError` when fewer than two pictures can be read.

    Args:
        source: the target folder or zip.
        max_pictures: at most this many pictures are used (spread evenly over the folders, the same every time).

    Returns:
        The target pictures' paths and hashes.
    """
    root = resolve_source(source)
    files = walk_files(root)
    candidates = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES]
    if len(candidates) > max_pictures:  # evenly spread over the folders, the same every time
        step = len(candidates) / max_pictures
        candidates = [candidates[int(i * step)] for i in range(max_pictures)]
    paths, digests = [], []
    for path in candidates:
        digest = _readable(path, root)
        if digest:
            paths.append(path)
            digests.append(digest)
    if len(paths) < MIN_TARGET:
        found = "no readable picture" if not paths else "only one readable picture"
        raise AdaptError(f"the adaptation target {source} has {found} ({len(files)} file(s) in all)",
                         "give a folder or zip with many pictures of the target domain (dozens at least)")
    return TargetSet(str(root), paths, digests, len(candidates) - len(paths))


def picture_hashes(source: str) -> set[str]:
    """The content hashes of every picture file under a folder (or zip), at any depth (unreadable files left out).

    Args:
        source: the folder or zip.

    Returns:
        SHA-256 hashes of the files' bytes.
    """
    hashes = set()
    root = resolve_source(source)
    for path in walk_files(root):
        if path.suffix.lower() in IMAGE_SUFFIXES:
            try:
                hashes.add(hashlib.sha256(read_picture_file(path, inside=root)).hexdigest())
            except ImageReadError:
                continue
    return hashes


def labelled_overlap_notes(labelled: str, target: str, evaluated_on: tuple[str, ...] | list[str]) -> list[str]:
    """Where the few labelled target pictures are also pictures the run adapts to or is judged on (same bytes).

    A labelled target test that holds the pictures that chose the method reports an accuracy those pictures
    helped choose; the unlabelled target holding them is milder (methods see them, without labels).

    Args:
        labelled: `adapt.labelled` ("" for none).
        target: `adapt.target` ("" for none).
        evaluated_on: the labelled folders the runs are evaluated on (`evaluate_on`, the target test).

    Returns:
        One sentence per overlap (none: an empty list). Folders that cannot be read are left to their own checks.
    """
    if not labelled.strip():
        return []
    try:
        mine = picture_hashes(labelled)
    except TransferLabError:
        return []
    notes = []
    for folder in evaluated_on:
        try:
            shared = len(mine & picture_hashes(folder))
        except TransferLabError:
            continue
        if shared:
            notes.append(f"{shared} of your {len(mine)} labelled target pictures are also in {Path(folder).name}, "
                         "the labelled target test: its accuracy then includes the pictures that chose the method; "
                         "keep the two apart")
    if target.strip():
        try:
            shared = len(mine & picture_hashes(target))
        except TransferLabError:
            shared = 0
        if shared:
            notes.append(f"{shared} of your {len(mine)} labelled target pictures are also among the unlabelled target "
                         f"pictures ({Path(target).name}): adaptation methods see them, without labels, while training")
    return notes
