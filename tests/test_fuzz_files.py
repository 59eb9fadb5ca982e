"""The contents of every file a user gives, fuzzed (issue 37): text data files (CSV, TSV, JSONL, .txt folders) of
any bytes, encoding, quoting and nesting; picture folders holding any bytes under picture names, empty files,
FIFOs and links out of the folder; the app's experiment file; an export's config.json. Each is read as the user's
command reads it and ends in success or one line of our own error within 30 s, never the "unexpected" catch-all,
and nothing outside the user's folder is read."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import tlcore_in_process

SECRET = "outside-the-data-7f3a"  # the text of a file outside every data folder: it must never be read as data
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])


def one_line_or_success(result, started: float) -> None:
    """The command succeeded, or said one line of our own error; within 30 s."""
    assert time.monotonic() - started < 30, "took longer than 30 s"
    assert result.returncode in (0, 1), (result.returncode, result.stderr[-500:])
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert "unexpected" not in result.stderr and "Traceback" not in result.stderr, result.stderr[-800:]
    if result.returncode == 1:
        assert errors and all(line.startswith(("error: ", "warning: ", "note: ", "  ")) for line in errors), errors
    assert SECRET not in result.stdout  # a link out of the folder is never followed


cell = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30) | st.sampled_from(
    ['"', '""', '"unclosed', "a,b", "line\nbreak", "\r", "\x00", "\ufeff", "\u202e", "é", "x" * 5000, "1e309", ""])
rows = st.lists(st.tuples(cell, st.sampled_from(["billing", "bug", "login", "", "é", "\x00"])), min_size=0, max_size=30)
encodings = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"])


def table_bytes(draw_rows: list, delimiter: str, header: list[str], encoding: str) -> bytes:
    lines = [delimiter.join(header)] + [delimiter.join(f'"{t}"' if "," in t else t for t in row) for row in draw_rows]
    return "\n".join(lines).encode(encoding, errors="replace")


@FAST
@given(data=rows, header=st.sampled_from([["text", "label"], ["label", "text"], ["text"], ["a", "b"], ["text", "text"],
                                          []]),
       suffix=st.sampled_from([".csv", ".tsv"]), encoding=encodings, raw=st.binary(max_size=300) | st.none())
def test_any_table_of_texts_is_read_or_refused_in_one_line(tmp_path: Path, data, header, suffix, encoding,
                                                           raw) -> None:
    path = tmp_path / f"texts{suffix}"
    if raw is not None:
        path.write_bytes(raw)
    else:
        path.write_bytes(table_bytes(data, "\t" if suffix == ".tsv" else ",", header, encoding))
    started = time.monotonic()
    one_line_or_success(tlcore_in_process("data", "scan", str(path)), started)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | cell,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(cell, inner, max_size=3), max_leaves=10)


@FAST
@given(lines=st.lists(json_values | st.text(max_size=40) | st.builds(lambda t, l: {"text": t, "label": l}, cell, cell),
                      max_size=20),
       deep=st.integers(min_value=0, max_value=3000))
def test_any_jsonl_of_texts_is_read_or_refused_in_one_line(tmp_path: Path, lines, deep) -> None:
    path = tmp_path / "texts.jsonl"
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    path.write_text(text + "\n" + "[" * deep + "]" * deep + "\n", errors="surrogatepass")
    started = time.monotonic()
    one_line_or_success(tlcore_in_process("data", "scan", str(path)), started)


@pytest.fixture
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder beside the data: a text and a real picture, which a link out of the data must never bring in."""
    from conftest import save_image

    folder = tmp_path_factory.mktemp("outside")
    (folder / "secret.txt").write_text(SECRET)
    save_image(folder / "secret.png", seed=99, fmt="PNG")
    return folder


specials = st.sampled_from(["bytes", "empty", "fifo", "link_out", "dir_link_out", "link_in", "nested", "text"])


@FAST
@given(files=st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from([".jpg", ".png", ".txt", ".gif", ""]),
                                specials, st.binary(max_size=200)), min_size=1, max_size=14))
def test_any_folder_is_scanned_or_refused_in_one_line_and_never_read_outside(tmp_path: Path, outside: Path,
                                                                             files) -> None:
    root = tmp_path / "data"
    if root.exists():
        shutil.rmtree(root)
    for index, (label, suffix, kind, content) in enumerate(files):
        folder = root / label / ("deeper" if kind == "nested" else "")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"item{index}{suffix}"
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "link_out":
            path.symlink_to(outside / ("secret.txt" if suffix == ".txt" else "secret.png"))
        elif kind == "dir_link_out":
            path.symlink_to(outside, target_is_directory=True)
        elif kind == "link_in" and index:
            path.symlink_to(root / files[0][0])
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind == "text":
            path.write_text(f"a short text {index} " + content.hex())
        else:
            path.write_bytes(content)
    started = time.monotonic()
    result = tlcore_in_process("data", "scan", str(root), "--json")
    one_line_or_success(result, started)
    from hashlib import sha256

    from tlcore.errors import TransferLabError
    from tlcore.modality import for_data

    try:  # the report as the run reads it: pictures or texts, whichever the folder holds
        report = for_data(str(root)).read(str(root))
    except TransferLabError:
        return
    secret = sha256((outside / "secret.png").read_bytes()).hexdigest()
    assert all(record.sha256 != secret and SECRET not in getattr(record, "text", "") for record in report.images)
    assert all((Path(report.root) / r.path.split("#")[0]).resolve().is_relative_to(root.resolve())
               for r in report.images)


@FAST
@given(content=json_values.map(json.dumps) | st.binary(max_size=400).map(lambda b: b.decode("latin-1"))
       | st.builds(lambda v: json.dumps({"id": "x", "version": 2, "values": v, "results": v}), json_values))
def test_any_experiment_file_is_loaded_or_refused_in_one_line(tmp_path: Path, content: str) -> None:
    from pages.experiment import ExperimentError, ExperimentStore

    store = ExperimentStore(tmp_path / "experiments")
    experiment = store.new()
    store.path(experiment.id).write_text(content, errors="surrogatepass")
    started = time.monotonic()
    try:
        store.load(experiment.id)
    except ExperimentError as exc:
        assert "\n" not in str(exc) and "unexpected" not in str(exc)
    assert time.monotonic() - started < 30


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny picture run, exported (safetensors only), shared by the export examples."""
    from tlcore.results.export import export_run
    from tlcore.training.train import train
    from train_fixtures import make_colour_classes, tiny_config

    home = tmp_path_factory.mktemp("home")
    before = os.environ.get("TRANSFERLAB_HOME")
    os.environ["TRANSFERLAB_HOME"] = str(home)
    try:
        data = make_colour_classes(tmp_path_factory.mktemp("colours"), per_class=6)
        run_dir = home / "run"
        train(tiny_config(data, epochs=1), run_dir)
        export_run(run_dir, home / "export", formats=())
    finally:
        if before is None:
            os.environ.pop("TRANSFERLAB_HOME", None)
        else:
            os.environ["TRANSFERLAB_HOME"] = before
    return home / "export"


@FAST
@given(field=st.sampled_from(["format", "arch", "model", "classes", "input_size", "preprocessing", "files", "modality",
                              "max_length", "meta_sha256", "nope"]),
       value=json_values, whole=st.none() | st.binary(max_size=200))
def test_any_export_config_is_loaded_or_refused_in_one_line(tmp_path: Path, exported: Path, field, value,
                                                            whole) -> None:
    from tlcore.errors import TransferLabError
    from tlcore.results.artifacts import load_export

    copy = tmp_path / "export"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(exported, copy)
    if whole is not None:
        (copy / "config.json").write_bytes(whole)
    else:
        meta = json.loads((copy / "config.json").read_text())
        meta[field] = value
        (copy / "config.json").write_text(json.dumps(meta))
    started = time.monotonic()
    try:
        load_export(copy)
    except TransferLabError as exc:
        assert "\n" not in str(exc) and "unexpected" not in str(exc)
    assert time.monotonic() - started < 30
