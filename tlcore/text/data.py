"""Labelled texts: a CSV, TSV or JSONL file with a text column and a label column, or a folder of class folders
holding .txt files; read defensively and reported on as pictures are (counts per class, empty texts, exact and
near-exact duplicates, duplicates across classes, bad rows and bad encodings by line number).

A text's place is its `location`: "file.csv#17" (the line its row starts on) or "class/name.txt". Split
manifests hold locations and content hashes, as they hold picture paths, so the seeded, stratified split, its
leakage guard (copies dealt together) and its manifest are the images' own (tlcore.data.split).
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import hashlib
import io
import json
import re
import stat
import threading
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from tlcore.errors import DatasetError
from tlcore.core.files import FileRefused, read_regular_file
from tlcore.core.paths import user_path

__all__ = ["TEXT_FILE_SUFFIXES", "TEXT_LAYOUT", "TextRecord", "TextReport", "is_text_source", "scan_texts",
           "read_texts", "DEFAULT_MAX_TEXT_FILE_MB"]

TEXT_FILE_SUFFIXES = (".csv", ".tsv", ".jsonl")
TEXT_LAYOUT = "texts"  # a manifest's layout for text data
DEFAULT_MAX_TEXT_FILE_MB = 64.0
TEXT_NAMES = ("text", "sentence", "review", "content", "body", "message", "comment", "document", "ticket",
              "description", "title", "utterance", "query")
LABEL_NAMES = ("label", "labels", "class", "category", "target", "sentiment", "intent", "topic", "tag", "y")
MAX_CLASSES = 200
MAX_TXT_FILE_BYTES = 8 * 2**20  # one .txt file of a class folder: a text, not a book
csv.field_size_limit(max(csv.field_size_limit(), 64 * 2**20))  # a long text is a text: the file's size bounds it


@dataclass(frozen=True)
class TextRecord:
    """One usable labelled text. `path` is its location (as a picture's path is), `sha256` the hash of its
    normalised text, so copies that differ only in case or spacing are dealt to one split together."""

    path: str
    label: str
    text: str
    sha256: str
    line: int | None = None
    split: str | None = None


@dataclass
class TextReport:
    """What reading a text data set found.

    Attributes:
        root: the folder locations are relative to; source: the file (or folder) read; layout: "texts".
        text_column, label_column: the columns used (None for a folder of .txt files).
        classes, counts: the classes and their usable texts. images: the usable `TextRecord`s (named as the
        scan report's pictures are, so the split takes either). skipped: (location, why) of rows not used.
        empty: locations of empty or whitespace-only texts. duplicates: groups of locations with the same
        normalised text; conflicts: those of them with different labels. lengths: words per usable text.
        errors: what makes the set unusable; warnings: what the user should know.
    """

    root: str
    source: str
    layout: str = TEXT_LAYOUT
    text_column: str | None = None
    label_column: str | None = None
    classes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    images: list[TextRecord] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)
    duplicates: list[list[str]] = field(default_factory=list)
    conflicts: list[list[str]] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    leakage: list = field(default_factory=list)  # a file has no given splits: nothing leaks between them

    @property
    def ok(self) -> bool:
        """True when the texts can be split and trained on."""
        return not self.errors

    def summary(self) -> str:
        """The report in a few lines, for the CLI."""
        lines = [f"{len(self.classes)} classes, {len(self.images)} usable texts, {len(self.skipped)} skipped"
                 + (f" (text column '{self.text_column}', label column '{self.label_column}')"
                    if self.text_column else "")]
        lines += [f"  {label}: {n}" for label, n in self.counts.items()]
        if self.lengths:
            ordered = sorted(self.lengths)
            lines.append(f"length in words: median {ordered[len(ordered) // 2]}, longest {ordered[-1]}")
        lines += [f"skipped {where}: {why}" for where, why in self.skipped[:20]]
        if len(self.skipped) > 20:
            lines.append(f"... and {len(self.skipped) - 20} more skipped rows")
        if self.duplicates:
            lines.append(f"{len(self.duplicates)} group(s) of duplicate texts (same words, ignoring case and spacing)"
                         + (f", {len(self.conflicts)} of them under different labels" if self.conflicts else ""))
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def left_out_words(self) -> str:
        """Every row not used, counted by reason, in one line ("" when every row is used): what a run says.

        Returns:
            e.g. "122 of 362 rows left out: 120 not valid UTF-8 (save the file as UTF-8), 2 empty".
        """
        reasons = Counter(why for _, why in self.skipped)
        if self.empty:
            reasons["empty"] = len(self.empty)
        if not reasons:
            return ""
        total = sum(reasons.values())
        return (f"{total} of {total + len(self.images)} rows left out: "
                + ", ".join(f"{n} {why}" for why, n in reasons.most_common()))

    def to_json(self) -> str:
        """The whole report as JSON (texts left out: locations point at them)."""
        return json.dumps({
            "source": self.source, "layout": self.layout, "text_column": self.text_column,
            "label_column": self.label_column, "classes": self.classes, "counts": self.counts,
            "skipped": [{"where": w, "why": why} for w, why in self.skipped], "empty": self.empty,
            "duplicates": self.duplicates, "conflicts": self.conflicts, "errors": self.errors,
            "warnings": self.warnings, "words": {"median": sorted(self.lengths)[len(self.lengths) // 2]
                                                 if self.lengths else 0, "max": max(self.lengths, default=0)},
        }, ensure_ascii=True)


def is_text_source(path: str | Path) -> bool:
    """True for a CSV, TSV or JSONL file, or a folder whose files are .txt (the modality comes from the data).

    Args:
        path: a data source as the user gave it.

    Returns:
        Whether it is text data.
    """
    source = user_path(path)
    if source.is_file():
        return source.suffix.lower() in TEXT_FILE_SUFFIXES
    if not source.is_dir():
        return source.suffix.lower() in TEXT_FILE_SUFFIXES
    try:
        files = list(islice((p for p in source.rglob("*") if p.is_file() and not p.name.startswith(".")), 200))
    except OSError:
        return False
    return bool(files) and sum(p.suffix.lower() == ".txt" for p in files) > len(files) / 2


def _normalised(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _digest(text: str) -> str:
    return hashlib.sha256(_normalised(text).encode("utf-8", "surrogatepass")).hexdigest()


def _pick(columns: list[str], wanted: str | None, names: tuple[str, ...], what: str, setting: str) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise DatasetError(f"no column '{wanted}' in the file (its columns: {', '.join(columns)[:200]})",
                               f"set {setting} to one of them")
        return wanted
    lowered = {c.strip().lower(): c for c in columns}
    for name in names:
        if name in lowered:
            return lowered[name]
    raise DatasetError(f"cannot tell which column holds the {what} (columns: {', '.join(columns)[:200]})",
                       f"set {setting} to its name")


def _rows_of_table(data: str, delimiter: str) -> tuple[list[str], list[tuple[int, list[str] | None, str]]]:
    reader = csv.reader(io.StringIO(data, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return [], []
    except csv.Error as exc:
        raise DatasetError(f"the header line cannot be read ({exc})", "save the file as plain CSV") from None
    rows = []
    last_line = data.count("\n")
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):  # a quote opened and never closed: every later line swallowed
                raise DatasetError(f"line {start}: a quote (\") opened there is never closed, so lines {start} to "
                                   f"{reader.line_num} would read as one text", "close the quote, or remove it") \
                    from None
            rows.append((start, None, f"not a valid row ({exc})"))
            continue
        if not row:
            continue
        if reader.line_num > start and reader.line_num >= last_line and _quote_left_open(data, start):  # at the end
            raise DatasetError(f"line {start}: a quote (\") opened there is never closed, so lines {start} to "
                               f"{reader.line_num} would read as one text", "close the quote, or remove it")
        if len(row) != len(header):
            spans = (f" (lines {start} to {reader.line_num} read as this one row: a quote opened on line {start} "
                     f"closes on line {reader.line_num})") if reader.line_num > start else ""
            rows.append((start, None, f"{len(row)} fields, the header has {len(header)}{spans}"))
            continue
        rows.append((start, row, ""))
    return header, rows


def _not_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return exc.start < len(line) - 4  # a multi-byte character cut by the 4,096-byte window is fine
    return False


def _quote_left_open(data: str, start: int) -> bool:
    """Whether the row starting at this line runs to the end of the file inside a quote: the quotes from there to
    the end are odd in number (a quoted field with line breaks that is closed leaves them even)."""
    rest = data.split("\n")[start - 1:]
    return sum(line.count('"') for line in rest) % 2 == 1


def _rows_of_jsonl(data: str) -> tuple[list[str], list[tuple[int, dict | None, str]]]:
    rows, columns = [], {}
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            rows.append((number, None, "not valid JSON"))
            continue
        except RecursionError:  # 100,000 nested brackets
            rows.append((number, None, "nested too deeply to be a row"))
            continue
        if not isinstance(value, dict):
            rows.append((number, None, "not a JSON object"))
            continue
        columns.update(dict.fromkeys(value))
        rows.append((number, value, ""))
    return list(columns), rows


_LAST_READ: list[tuple[tuple, TextReport]] = []  # the last file read, by its identity: one read per run, not six
_LAST_READ_LOCK = threading.Lock()


def _identity(source: Path, text_column: str | None, label_column: str | None) -> tuple | None:
    """What makes two reads of a file the same read: the file itself (device, inode, size, modification time) and
    the columns asked for. None for a folder (its files change without it) or a path that cannot be looked at."""
    try:
        found = source.stat()
    except OSError:
        return None
    if not stat.S_ISREG(found.st_mode):
        return None
    return (str(source.resolve()), found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns, text_column,
            label_column)


def _copy(report: TextReport) -> TextReport:
    """A report of its own for each caller: its lists and dicts are new (the records themselves are frozen)."""
    return dataclasses.replace(report, **{f.name: copy.copy(getattr(report, f.name))
                                          for f in dataclasses.fields(report)
                                          if isinstance(getattr(report, f.name), (list, dict))})


def read_texts(path: str | Path, *, text_column: str | None = None, label_column: str | None = None,
               max_file_mb: float = DEFAULT_MAX_TEXT_FILE_MB) -> TextReport:
    """Read and check a text data set. A file read again unchanged, with the same columns, is not read again
    (a head-only run asked for a million-row file six times: the split, the rows left out, each dataset...).

    Args:
        path: a .csv, .tsv or .jsonl file, or a folder of class folders holding .txt files.
        text_column, label_column: the columns to use (None: found by name, e.g. "text" and "label").
        max_file_mb: a larger file is refused (the whole file is read into memory).

    Returns:
        The `TextReport` (errors in it when the set cannot be used: no usable text, one class...).

    Raises:
        DatasetError: the path is missing, too large, not text data, or its columns cannot be found.
    """
    source = user_path(path)
    key = _identity(source, text_column, label_column)
    limit = int(min(max_file_mb, 2**40) * 2**20)
    with _LAST_READ_LOCK:
        if key is not None and key[3] <= limit and _LAST_READ and _LAST_READ[0][0] == key:
            return _copy(_LAST_READ[0][1])
    report = _read_texts(source, text_column, label_column, max_file_mb)
    if key is not None:
        with _LAST_READ_LOCK:
            _LAST_READ[:] = [(key, report)]
    return _copy(report)


def _read_texts(source: Path, text_column: str | None, label_column: str | None, max_file_mb: float) -> TextReport:
    """`read_texts` itself: the file (or folder) read and checked."""
    if not source.exists():
        raise DatasetError(f"no such file or folder: {source}", "check the path")
    if source.is_dir():
        return _read_folder(source)
    if source.suffix.lower() not in TEXT_FILE_SUFFIXES:
        raise DatasetError(f"{source.name} is not a text data file", "give a .csv, .tsv or .jsonl file")
    limit = int(min(max_file_mb, 2**40) * 2**20)
    try:
        raw = read_regular_file(source, limit)  # a FIFO or /dev/zero is refused, not waited on or read for ever
    except FileRefused as exc:
        if exc.why == "too large":
            raise DatasetError(f"{source.name} is {source.stat().st_size / 2**20:.0f} MB, more than the "
                               f"{max_file_mb:g} MB limit",
                               "sample it down, or raise the limit (--max-file-mb)") from None
        raise DatasetError(exc.problem, exc.hint) from None
    if not raw.strip():
        raise DatasetError(f"{source.name} is empty", "give a file with a header line and one row per text")
    first_line = raw[:4096].split(b"\n", 1)[0]
    if b"\x00" in raw[:4096] or _not_utf8(first_line):  # a picture or a spreadsheet named .csv
        raise DatasetError(f"{source.name} is not a text table: its first line is not UTF-8 text",
                           "give a CSV, TSV or JSONL file of texts (a spreadsheet: save it as CSV UTF-8)")
    if text_column is not None and text_column == label_column:
        raise DatasetError(f"data.text_column and data.label_column are both '{text_column}'",
                           "the labels need a column of their own")
    data = raw.decode("utf-8-sig", errors="surrogateescape")  # bad bytes kept, found per row below
    source = source.resolve()
    report = TextReport(root=str(source.parent), source=str(source))
    if source.suffix.lower() == ".jsonl":
        columns, rows = _rows_of_jsonl(data)
    else:
        columns, rows = _rows_of_table(data, "\t" if source.suffix.lower() == ".tsv" else ",")
    if not columns:
        raise DatasetError(f"{source.name} has no columns", "give a file with a header line")
    report.text_column = _pick(columns, text_column, TEXT_NAMES, "texts", "data.text_column")
    report.label_column = _pick([c for c in columns if c != report.text_column] or columns, label_column,
                                LABEL_NAMES, "labels", "data.label_column")
    text_at, label_at = (columns.index(report.text_column), columns.index(report.label_column)) \
        if source.suffix.lower() != ".jsonl" else (report.text_column, report.label_column)
    for line, row, why in rows:
        where = f"{source.name}#{line}"
        if row is None:
            report.skipped.append((f"line {line}", why))
            continue
        text, label = (row.get(text_at), row.get(label_at)) if isinstance(row, dict) else (row[text_at], row[label_at])
        _add(report, where, line, text, label)
    return _finish(report)


def _read_folder(root: Path) -> TextReport:
    root = root.resolve()
    report = TextReport(root=str(root), source=str(root))
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if _not_text(folder.name):  # its name is the label: said once, as for pictures (before: each of its files
            # was called "not valid UTF-8 (save the file as UTF-8)", which was not the problem)
            shown = folder.name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            raise DatasetError(f"the class folder name '{shown}' in {root} is not valid UTF-8 text",
                               "rename the folder (a name in plain letters)")
        for file in sorted(folder.rglob("*.txt")):
            where = file.relative_to(root).as_posix()
            try:  # regular files inside the folder only: no FIFO, device, or link to /etc/passwd
                raw = read_regular_file(file, MAX_TXT_FILE_BYTES, inside=root)
            except FileRefused as exc:
                report.skipped.append((where, exc.why))
                continue
            _add(report, where, None, raw.decode("utf-8-sig", errors="surrogateescape"), folder.name)
    if not report.images and not report.skipped and not report.empty:
        raise DatasetError(f"{root} holds no class folders with .txt files",
                           "give one folder per class with a .txt file per text, or a CSV file")
    return _finish(report)


def _not_text(name: str) -> bool:
    """A name read from the disk holds bytes that are not UTF-8 (kept as surrogate escapes)."""
    return any("\udc80" <= c <= "\udcff" for c in name)


def _add(report: TextReport, where: str, line: int | None, text: object, label: object) -> None:
    place = f"line {line}" if line is not None else where
    if not isinstance(text, str) or not isinstance(label, (str, int)) or isinstance(label, bool):
        report.skipped.append((place, "the text or the label is missing or not text"))
        return
    label = str(label).strip()
    if _not_text(text + label):
        report.skipped.append((place, "not valid UTF-8 (save the file as UTF-8)"))
        return
    if not label:
        report.skipped.append((place, "no label"))
        return
    if "\n" in label or len(label) > 100:
        report.skipped.append((place, "the label is not a short name (a line break, or over 100 characters)"))
        return
    if not text.strip():
        report.empty.append(place)
        return
    report.images.append(TextRecord(where, unicodedata.normalize("NFC", label), text, _digest(text), line))


def _finish(report: TextReport) -> TextReport:
    counts = Counter(r.label for r in report.images)
    report.classes = sorted(counts)
    report.counts = {label: counts[label] for label in report.classes}
    report.lengths = [len(r.text.split()) for r in report.images]
    groups: dict[str, list[TextRecord]] = defaultdict(list)
    for record in report.images:
        groups[record.sha256].append(record)
    for records in groups.values():
        if len(records) > 1:
            places = [r.path for r in records]
            report.duplicates.append(places)
            if len({r.label for r in records}) > 1:
                report.conflicts.append(places)
    if report.empty:
        report.warnings.append(f"{len(report.empty)} empty or whitespace-only text(s) left out "
                               f"(first: {report.empty[0]})")
    if report.conflicts:
        report.warnings.append(f"{len(report.conflicts)} text(s) appear under different labels (first: "
                               f"{', '.join(report.conflicts[0][:3])}); they are dealt to one split together")
    if not report.images:
        report.errors.append("no usable text: every row was empty or skipped")
    elif len(report.classes) == 1:
        report.errors.append(f"only one class ('{report.classes[0]}'): a classifier needs two or more")
    elif len(report.classes) > MAX_CLASSES:
        report.errors.append(f"{len(report.classes)} different labels: is the label column right "
                             f"('{report.label_column}')?")
    small = [label for label, n in report.counts.items() if n < 3]
    if small and not report.errors:
        report.errors.append(f"class '{small[0]}' has {report.counts[small[0]]} text(s): too few for train, "
                             "validation and test (20 or more is a sensible minimum)")
    return report


def scan_texts(path: str | Path, **options) -> TextReport:
    """`read_texts`, for callers that scan any data source (the same options).

    Args:
        path: the data source; options: `read_texts`'s.

    Returns:
        The report.
    """
    return read_texts(path, **options)


_LOCATION = re.compile(r"(.+)#(\d+)$")
