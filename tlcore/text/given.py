"""What the user asked to classify with a text model: one text, the lines of a .txt file, or the text column of
a CSV/TSV/JSONL file; read as any file a user gives is (regular, bounded)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from tlcore.errors import TransferLabError
from tlcore.core.files import FileRefused, read_regular_file
from tlcore.text.data import TEXT_FILE_SUFFIXES, TEXT_NAMES

__all__ = ["texts_to_predict", "GivenTexts", "MAX_TEXTS", "MAX_PREDICT_FILE_BYTES"]

MAX_TEXTS = 100_000
MAX_PREDICT_FILE_BYTES = 64 * 2**20


class GivenTexts(list):
    """The texts to classify, in order; `skipped`: the rows of a table that held none (not JSON, no text), which
    the CLI says rather than leaving them out without a word."""

    skipped: int = 0


def texts_to_predict(given: str) -> GivenTexts:
    """What the user asked to classify: a CSV/TSV/JSONL file (its text column), a .txt file (one text per line),
    or else the argument itself as one text.

    Args:
        given: a path or a text.

    Returns:
        The texts.

    Raises:
        TransferLabError: the file holds no text, or too many.
    """
    path = Path(given)
    try:  # anything there is read as a file (and refused when it is a FIFO, a device or a folder), never as a text
        there = path.exists() or path.is_symlink()
    except (OSError, ValueError):
        there = False
    if not there:
        if not given.strip():
            raise TransferLabError("no text to classify", "give a text, a .txt file or a CSV file")
        if path.suffix.lower() in (*TEXT_FILE_SUFFIXES, ".txt") and not any(c.isspace() for c in given):
            raise TransferLabError(f"no such file: {given[:200]}", "give a file that exists, or the text itself")
        return GivenTexts([given])
    try:  # a regular file of a bounded size: not a FIFO, not /dev/zero
        text = read_regular_file(path, MAX_PREDICT_FILE_BYTES).decode("utf-8", errors="replace")
    except FileRefused as exc:
        raise TransferLabError(exc.problem, exc.hint) from None
    rows = _column(path, text) if path.suffix.lower() in TEXT_FILE_SUFFIXES else \
        [line for line in text.splitlines() if line.strip()]
    if not rows:
        raise TransferLabError(f"{path.name} holds no text", "one text per line (.txt), or a text column (CSV)")
    if len(rows) > MAX_TEXTS:
        raise TransferLabError(f"{path.name} holds {len(rows):,} texts", f"classify at most {MAX_TEXTS:,} at a time")
    return rows if isinstance(rows, GivenTexts) else GivenTexts(rows)


def _column(path: Path, text: str) -> list[str]:
    """The text column of a table that may have no label column."""
    if path.suffix.lower() == ".jsonl":
        rows = GivenTexts()
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except (ValueError, RecursionError):  # not JSON, or nested past Python's limit: not a row
                rows.skipped += 1
                continue
            text = next((value.get(k) for k in value if str(k).lower() in TEXT_NAMES), None) \
                if isinstance(value, dict) else None
            if isinstance(text, str) and text.strip():
                rows.append(text)
            else:
                rows.skipped += 1
        return rows
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
    try:
        header = next(reader, [])
        named = [i for i, c in enumerate(header) if c.strip().lower() in TEXT_NAMES]
        if not named:
            raise TransferLabError(f"cannot tell which column of {path.name} holds the texts (columns: "
                                   f"{', '.join(header)[:200]})", "name it 'text'")
        rows = GivenTexts()
        for row in reader:
            if len(row) > named[0] and row[named[0]].strip():
                rows.append(row[named[0]])
            elif row:
                rows.skipped += 1
        return rows
    except csv.Error as exc:
        raise TransferLabError(f"{path.name} line {reader.line_num}: {exc}", "save the file as plain CSV") from None


