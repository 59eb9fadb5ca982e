"""The names of the files in a run folder and an export folder, and the reads that need no model: the epoch
stamped in a weights file, a stored evaluation. Light on purpose (no torch, no timm): the run store and the
store-only commands (`runs list`, `runs show`) use it and start in well under a second.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from safetensors import SafetensorError, safe_open

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ADAPTED", "TARGET_SCORE", "TARGET_PROBABILITIES", "read_target_probabilities", "CONFIG", "SPLIT", "HISTORY", "BEST", "LAST", "STATE", "EVALUATION", "EVALUATIONS", "PREDICTIONS",
           "TRAINING_MARK", "EXPORT_MARK", "EXPORT_MARKS", "META_SHA256", "meta_checksum", "EXPORT_WEIGHTS", "EXPORT_CARD", "EXPORT_ENCODER", "EXPORT_REQUIRED", "weights_epoch",
           "read_evaluation", "read_folder_evaluations", "read_target_score", "folder_evaluation_name", "RUN_RECORD",
           "EVENTS_LOG", "write_run_record", "read_run_record", "append_event"]

# -- a run folder ---------------------------------------------------------------------------------
CONFIG, SPLIT, HISTORY = "config.json", "split.json", "history.json"
BEST, LAST, STATE = "best.safetensors", "last.safetensors", "last_state.pt"  # STATE: the resume unit
EVALUATION, PREDICTIONS = "evaluation.json", "predictions.csv"
TARGET_SCORE = "target_score.json"  # runs given target pictures: how well the model fits them, without labels
TARGET_PROBABILITIES = "target_probabilities.npy"  # and its class probabilities for them, in the scan's order
ADAPTED = "adapted.safetensors"  # AdaBN runs: the best weights with the target's BatchNorm statistics
EVALUATIONS = "evaluations"  # one sub-folder per other labelled folder the run was evaluated on
RUN_RECORD = "run.json"  # what only the store knew: its comparison, runner, creation and whether it ever started
EVENTS_LOG = "events.jsonl"  # the run's events as they happen (a rebuilt store reads them back)
TRAINING_MARK = ".training"  # present while a process trains the run: its pid, so a rebuilt store knows

# -- an export folder -----------------------------------------------------------------------------
EXPORT_MARK = "transferlab-export-v2"  # v2: config.json carries a checksum of itself (META_SHA256)
EXPORT_MARKS = ("transferlab-export-v1", EXPORT_MARK)  # v1 exports still load (their config.json is not checked)
META_SHA256 = "meta_sha256"
EXPORT_WEIGHTS, EXPORT_CARD = "model.safetensors", "MODEL_CARD.md"
EXPORT_ENCODER = "encoder"  # text exports: the encoder's config and tokenizer files (its weights: EXPORT_WEIGHTS)
EXPORT_REQUIRED = (EXPORT_WEIGHTS, EXPORT_CARD)  # listed and checksummed in every export; other formats when written



def weights_epoch(path: str | Path) -> int | None:
    """The epoch stamped in a weights file.

    Args:
        path: a safetensors weights file.

    Returns:
        The epoch (0-based), or None when the file is absent, unreadable or unstamped.
    """
    try:
        with safe_open(str(path), framework="pt") as fh:
            epoch = (fh.metadata() or {}).get("epoch")
    except (OSError, SafetensorError, ValueError):
        return None
    return int(epoch) if epoch is not None and epoch.isdigit() else None



def read_evaluation(run_dir: str | Path) -> dict | None:
    """The run's stored test evaluation as plain data.

    Args:
        run_dir: a run folder (or one of its evaluations/ sub-folders).

    Returns:
        The evaluation dict, or None when there is none (or it cannot be read).
    """
    try:
        data = json.loads((Path(run_dir) / EVALUATION).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_folder_evaluations(run_dir: str | Path) -> dict[str, dict]:
    """The run's evaluations on other labelled folders.

    Args:
        run_dir: a run folder.

    Returns:
        Evaluations by folder name, newest first; unreadable ones left out.
    """
    found = []
    for folder in (Path(run_dir) / EVALUATIONS).glob("*/"):
        data = read_evaluation(folder)
        if data is not None:
            found.append(((folder / EVALUATION).stat().st_mtime, folder.name, data))
    return {name: data for _, name, data in sorted(found, reverse=True)}


def read_target_score(run_dir: str | Path) -> dict | None:
    """The run's score on its target pictures (`tlcore.results.target_score`), as stored.

    Args:
        run_dir: the run folder.

    Returns:
        The stored dict ("snd", "pictures", "predicted_shares"...), or None when the run has none or it is damaged.
    """
    try:
        data = json.loads((Path(run_dir) / TARGET_SCORE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("snd"), (int, float)) else None


def folder_evaluation_name(source: str | Path) -> str:
    """Where an evaluation on `source` is kept in the run (under EVALUATIONS): the folder's (or zip's) name, made safe.

    Args:
        source: the labelled folder, zip or file evaluated on.

    Returns:
        The sub-folder's name.
    """
    name = Path(str(source).rstrip("/\\")).name
    if name.lower().endswith(".zip"):
        name = name[:-4]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "folder"


def meta_checksum(meta: dict) -> str:
    """The SHA-256 of an export's config.json content, itself left out: any later edit of the file shows.

    Args:
        meta: the config's content.

    Returns:
        The hex digest.
    """
    import hashlib

    plain = {k: v for k, v in meta.items() if k != META_SHA256}
    return hashlib.sha256(json.dumps(plain, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_run_record(run_dir: str | Path, **fields: object) -> None:
    """Write (or update) the run's record in its folder, whole or not at all, so a rebuilt store knows a run
    that never started (queued, or cancelled while queued) and the comparison each run belongs to.

    Args:
        run_dir: the run folder (made if needed).
        **fields: e.g. state="queued", sweep=..., runner=..., created=...
    """
    import json

    from tlcore.core.files import atomic_write

    folder = Path(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    record = {**read_run_record(folder), **fields}
    atomic_write(folder / RUN_RECORD, lambda tmp: tmp.write_text(json.dumps(record)))


def read_run_record(run_dir: str | Path) -> dict:
    """The run's record ({} when there is none or it cannot be read).

    Args:
        run_dir: the run folder.

    Returns:
        Its fields.
    """
    import json

    try:
        record = json.loads((Path(run_dir) / RUN_RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def append_event(run_dir: str | Path, event: dict) -> None:
    """Append one event to the run's events file (a line of JSON); a failure to write is not the run's failure.

    Args:
        run_dir: the run folder.
        event: ts, kind, message, data.
    """
    import json

    try:
        with open(Path(run_dir) / EVENTS_LOG, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(event) + "\n")
    except (OSError, TypeError, ValueError):
        pass


def read_target_probabilities(run_dir: str | Path) -> "np.ndarray | None":
    """The class probabilities the run gave its target pictures when it was scored (one row per picture, in the
    order the target folder is scanned, the same for every run of that folder).

    Args:
        run_dir: the run folder.

    Returns:
        A (pictures, classes) float array, or None when the run has none or the file is damaged.
    """
    import numpy as np  # here, not at the top: the store's own commands never need it

    try:
        found = np.load(Path(run_dir) / TARGET_PROBABILITIES, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    return found if found.ndim == 2 and found.dtype.kind == "f" and np.isfinite(found).all() else None
