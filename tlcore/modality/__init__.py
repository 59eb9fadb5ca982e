"""The kinds of data a run can have (pictures, texts, and any kind registered), resolved once: from the data
(`for_data`), from the model's name (`for_model`), from a built model (`of_built`) or a run config (`of_config`).

The engine asks the modality object (tlcore.modality.base.Modality) and never which kind it is. Kinds are asked in
the order they were registered, newest first; pictures take what no other kind claims.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from tlcore.data import SplitManifest, default_manifest_path, make_split
from tlcore.errors import DatasetError
from tlcore.modality.base import Item, Modality
from tlcore.modality.pictures import Pictures
from tlcore.modality.texts import Texts
from tlcore.models import BuiltModel

__all__ = ["Modality", "Item", "register", "unregister", "named", "for_data", "for_model", "of_built", "of_config",
           "registered", "build_for", "resolve_manifest", "load_manifest", "PICTURES", "TEXTS"]

PICTURES = Pictures()
TEXTS = Texts()
_KINDS: list[Modality] = [TEXTS]  # asked first to last; PICTURES is asked last, always
_FALLBACK = PICTURES


def register(modality: Modality) -> Modality:
    """Add a kind of data; it is asked before the kinds registered earlier.

    Args:
        modality: the kind's object (its `key` must be new).

    Returns:
        The same object.

    Raises:
        ValueError: a kind with that key is registered already.
    """
    if any(m.key == modality.key for m in registered()):
        raise ValueError(f"a modality named {modality.key!r} is registered already")
    _KINDS.insert(0, modality)
    return modality


def unregister(key: str) -> None:
    """Take a registered kind out again (pictures and texts stay).

    Args:
        key: its key.
    """
    _KINDS[:] = [m for m in _KINDS if m.key != key or m is TEXTS]


def registered() -> list[Modality]:
    """Every kind, in the order they are asked (pictures last)."""
    return [*_KINDS, _FALLBACK]


def named(key: str) -> Modality:
    """The kind with this key (a `BuiltModel.modality`, a setting's `Meta.modalities` entry) or this export key.

    Raises:
        KeyError: no such kind.
    """
    for modality in registered():
        if key in (modality.key, modality.export_key):
            return modality
    raise KeyError(key)


def for_data(source: str | Path) -> Modality:
    """The kind of the data at `source` (pictures when no other kind claims it)."""
    return next(m for m in registered() if m.owns_data(str(source)))


def for_model(name: str) -> Modality:
    """The kind of data the model `name` takes (pictures when no other kind claims it)."""
    return next(m for m in registered() if m.owns_model(str(name)))


def of_built(built: BuiltModel) -> Modality:
    """The kind of a built model."""
    return named(built.modality)


def of_config(config: Any) -> Modality:
    """The kind a run config trains (its model's)."""
    return for_model(config.model.name)


def build_for(spec: Any, num_classes: int | None, *, input_size: tuple[int, int, int] | None = None,
              seed: int = 0) -> BuiltModel:
    """The model a spec names, built by its kind (`Modality.build`).

    Args:
        spec: a `ModelSpec`; num_classes: outputs of the new head; input_size: where the kind takes one;
        seed: the new head's initialisation.

    Returns:
        The `BuiltModel`.
    """
    return for_model(spec.name).build(spec, num_classes, input_size=input_size, seed=seed)


class SplitSettings(Protocol):
    """What choosing a split needs (a run config's `data` part has these)."""

    source: str
    manifest: str | None
    split_seed: int
    val: float
    test: float


PhaseReport = Callable[[str, int, int], None]  # (what is being done, phases done, phases in all)
SPLIT_PHASES = 4  # reading, splitting, saving, checking the split's files


def resolve_manifest(data: SplitSettings, on_phase: PhaseReport | None = None) -> tuple[SplitManifest, Path]:
    """The given manifest, or the split the source and seed always give (saved where every run finds it).

    Args:
        data: the run config's `data` part.
        on_phase: told at the start of each phase, `(words, done, SPLIT_PHASES)`: reading and splitting a million
            texts takes half a minute, and the wait says where it is.

    Returns:
        (the manifest, its file).

    Raises:
        DatasetError: the source cannot be read or split.
    """
    say = on_phase or (lambda words, done, total: None)
    if data.manifest:
        path = Path(data.manifest)
        say(f"reading the split {path.name}", 0, SPLIT_PHASES)
        return SplitManifest.load(path), path
    kind = for_data(data.source)
    say(f"reading {Path(data.source).name}", 0, SPLIT_PHASES)
    report = kind.read(data.source, data)
    path = default_manifest_path(report, data.split_seed)
    say(f"splitting {len(report.images):,} {kind.items_word}", 1, SPLIT_PHASES)
    manifest = make_split(report, seed=data.split_seed, val=data.val, test=data.test)
    say("saving the split", 2, SPLIT_PHASES)
    if not path.exists() or SplitManifest.load(path).id != manifest.id:
        manifest.save(path)
    return manifest, path


def load_manifest(data: SplitSettings, on_phase: PhaseReport | None = None) -> SplitManifest:
    """`resolve_manifest`, and every file of the split still there (a run must not find one gone mid-epoch).

    Args:
        data: the run config's `data` part.
        on_phase: as `resolve_manifest`'s; the check of the files is its last phase.

    Returns:
        The manifest.

    Raises:
        DatasetError: as `resolve_manifest`, or a file of the split is gone.
    """
    manifest, _ = resolve_manifest(data, on_phase)
    if on_phase is not None:  # a table's rows are one file: the files are counted, not the items
        files = len(manifest.source_files())
        on_phase(f"checking that the split's {files:,} file{'s are' if files != 1 else ' is'} there", 3, SPLIT_PHASES)
    missing = manifest.missing_files()
    if missing:
        raise DatasetError(f"{len(missing)} file(s) of the split are gone (first: {missing[0]})",
                           "restore them, or scan and split the data set again")
    return manifest
