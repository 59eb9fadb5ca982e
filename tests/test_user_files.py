"""Files a user gives are read only when that is safe (issue 37): no hang on a FIFO, nothing read through a link out
of the data folder or from a device, a quote never closed named by its line, rows left out counted by reason, and
an experiment file that is a FIFO, a device or edited by hand read as damaged or in part, never a traceback."""

from __future__ import annotations

import json
import re
import os
from pathlib import Path

import pytest

from conftest import tlcore_in_process
from tlcore.config import RunConfig
from tlcore.errors import DatasetError
from pages.experiment import ExperimentError, ExperimentStore
from tlcore.core.files import FileRefused, read_regular_file
from tlcore.training.prepare import left_out_of_the_data
from tlcore.text.data import read_texts


def text_folder(root: Path, per_class: int = 6) -> Path:
    for label in ("login", "shipping"):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            (root / label / f"{i}.txt").write_text(f"a {label} question number {i} about {label} things")
    return root


def test_a_fifo_in_a_class_folder_is_skipped_not_waited_on(tmp_path: Path) -> None:
    folder = text_folder(tmp_path / "texts")
    os.mkfifo(folder / "shipping" / "fifo.txt")  # before: `data scan` and `train` blocked on it for ever
    report = read_texts(folder)
    assert ("shipping/fifo.txt", "not a regular file but a pipe (FIFO)") in report.skipped
    assert len(report.images) == 12


def test_a_link_out_of_the_folder_and_a_device_are_not_read(tmp_path: Path) -> None:
    folder = text_folder(tmp_path / "texts")
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:root:/root:/bin/bash")
    (folder / "login" / "passwd.txt").symlink_to(secret)  # before: read and trained on
    (folder / "shipping" / "zero.txt").symlink_to("/dev/zero")  # before: "unexpected MemoryError"
    (folder / "shipping" / "inside.txt").symlink_to(folder / "shipping" / "0.txt")  # a link inside: followed
    report = read_texts(folder)
    skipped = dict(report.skipped)
    assert skipped["login/passwd.txt"] == "a link out of the data folder"
    assert skipped["shipping/zero.txt"] == "a link out of the data folder"
    assert not any("root:x" in r.text for r in report.images)
    assert "shipping/inside.txt" in {r.path for r in report.images}


@pytest.mark.parametrize("make, problem", [
    (lambda p: os.mkfifo(p), "is a pipe (FIFO), not a file"),
    (lambda p: p.symlink_to("/dev/zero"), "is a device, not a file"),
])
def test_a_data_file_that_is_a_fifo_or_a_device_is_one_line(tmp_path: Path, make, problem: str) -> None:
    path = tmp_path / "data.csv"
    make(path)
    with pytest.raises(DatasetError, match=re.escape(problem)):
        read_texts(path)
    result = tlcore_in_process("data", "scan", str(path))
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and problem in result.stderr
    config = tmp_path / "run.json"  # a training run says the same (before, for the link: "/dev/zero is a file, not
    config.write_text(json.dumps({"data": {"source": str(path)}, "epochs": 1}))  # a folder or .zip")
    trained = tlcore_in_process("train", str(config))
    assert trained.returncode != 0 and problem in trained.stdout + trained.stderr, trained.stdout + trained.stderr


def test_read_regular_file_refuses_what_it_must(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * 2000)
    assert read_regular_file(big, 2000) == b"x" * 2000
    with pytest.raises(FileRefused, match="over the"):
        read_regular_file(big, 1999)
    with pytest.raises(FileRefused) as info:
        read_regular_file(tmp_path, 10)
    assert info.value.why == "not a regular file but a folder"


def test_a_quote_never_closed_is_named_by_its_line(tmp_path: Path) -> None:
    """Before: "180 usable texts, 1 skipped", the 60 rows after the quote swallowed into one field without a word."""
    rows = ["text,label"] + [f"question {i} about my order,{'shipping' if i % 2 else 'login'}" for i in range(240)]
    rows[181] = '"question with an open quote,login'
    path = tmp_path / "tickets.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DatasetError, match=r"line 182: a quote \(\"\) opened there is never closed, so lines 182 to"):
        read_texts(path)


def test_a_quote_closed_by_the_next_row_names_both_lines(tmp_path: Path) -> None:
    """Before: "238 usable texts, 1 skipped" of 240 rows, "skipped line 182: 5 fields": line 183 read into it
    without a word. Now the skipped row says it spans lines 182 to 183, and why."""
    rows = ["text,label"] + [f'"question {i}, about my order",{"shipping" if i % 2 else "login"}' for i in range(240)]
    rows[181] = rows[181].replace('",', ",", 1)  # its closing quote lost: the next row's opening quote closes it
    path = tmp_path / "tickets.csv"
    path.write_text("\n".join(rows) + "\n")
    report = read_texts(path)
    assert len(report.images) == 238
    [(place, why)] = report.skipped
    assert place == "line 182" and why.endswith("(lines 182 to 183 read as this one row: a quote opened on line "
                                                "182 closes on line 183)"), why


def test_rows_left_out_are_counted_by_reason_for_the_run(tmp_path: Path) -> None:
    """Before: `data scan` listed 120 lines as not UTF-8, and `train` trained on the rest without a word."""
    lines = [b"text,label"] + [f"question {i} about my order,{'shipping' if i % 2 else 'login'}".encode()
                                for i in range(60)]
    lines += ["caf\xe9 question {},login".format(i).encode("latin-1") for i in range(12)] + [b",login"]
    path = tmp_path / "tickets.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    words = left_out_of_the_data(RunConfig.from_dict({"data": {"source": str(path)}}))
    assert words == "13 of 73 rows left out: 12 not valid UTF-8 (save the file as UTF-8), 1 empty"
    assert left_out_of_the_data(RunConfig.from_dict({"data": {"source": str(tmp_path)}})) == ""


@pytest.mark.parametrize("damage", ["fifo", "zero", "not json", "nested", "not an object"])
def test_a_damaged_experiment_file_is_said_not_waited_on(tmp_path: Path, damage: str) -> None:
    store = ExperimentStore(tmp_path)
    experiment = store.new({"epochs": 3})
    path = store.path(experiment.id)
    path.unlink()
    if damage == "fifo":
        os.mkfifo(path)  # before: the loader blocked; the browser showed a blank page
    elif damage == "zero":
        path.symlink_to("/dev/zero")  # before: MemoryError
    else:
        path.write_text({"not json": "{", "nested": "[" * 100_000 + "]" * 100_000,
                         "not an object": "[1, 2]"}[damage])
    with pytest.raises(ExperimentError, match="is damaged"):
        store.load(experiment.id)


def test_an_experiment_file_edited_by_hand_keeps_what_can_be_read(tmp_path: Path) -> None:
    """Before: `created: "abc"` and `results: {"ranking": 5, "estimates": "x"}` were tracebacks on the pages."""
    store = ExperimentStore(tmp_path)
    experiment = store.new({"epochs": 3})
    path = store.path(experiment.id)
    data = json.loads(path.read_text())
    data.update(created="abc", updated=True, results={"ranking": 5, "estimates": "x", "other": 1},
                runs=["r1", 5, None], config="x")
    path.write_text(json.dumps(data))
    loaded = store.load(experiment.id)
    assert (loaded.created, loaded.updated, loaded.config, loaded.runs) == (0.0, 0.0, None, ["r1"])
    assert loaded.results == {"other": 1} and loaded.get("epochs") == 3


def test_the_packaged_text_model_is_unpacked_once_under_many_first_uses(tmp_path: Path) -> None:
    """Before: 3 processes x 10 threads using a fresh data folder at once: 11 of 30 failed on a shared ".partial"."""
    import subprocess
    import sys

    script = ("import sys, threading; sys.path.insert(0, sys.argv[1])\n"
              "from tlcore.text.catalog import model_folder\n"
              "bad = []\n"
              "def go():\n"
              "    try:\n"
              "        assert (model_folder('all-MiniLM-L6-v2') / 'model.safetensors').is_file()\n"
              "    except Exception as exc:\n"
              "        bad.append(repr(exc))\n"
              "threads = [threading.Thread(target=go) for _ in range(5)]\n"
              "[t.start() for t in threads]; [t.join() for t in threads]\n"
              "print(len(bad), bad[:1])\n")
    env = {**os.environ, "TRANSFERLAB_HOME": str(tmp_path)}
    root = str(Path(__file__).resolve().parents[1])
    workers = [subprocess.Popen([sys.executable, "-c", script, root], env=env, stdout=subprocess.PIPE, text=True)
               for _ in range(3)]
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert all(out.startswith("0 []") for out in outputs), outputs
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["all-MiniLM-L6-v2"]  # nothing left over


def test_contents_that_were_the_catch_all_are_one_line_of_our_own(tmp_path: Path) -> None:
    """Before: "unexpected RecursionError" (JSONL of 100,000 brackets), "unexpected Error" (a 200,000-character
    field in `predict FILE.csv`), advice about columns for a JPEG named .csv, a false "no column 'text'"."""
    from tlcore.results.text_predict import texts_to_predict

    nested = tmp_path / "nested.jsonl"
    nested.write_text('{"text": "a", "label": "x"}\n' + "[" * 100_000 + "]" * 100_000 + "\n")
    report = read_texts(nested)
    assert ("line 2", "nested too deeply to be a row") in report.skipped
    assert texts_to_predict(str(nested)) == ["a"] and texts_to_predict(str(nested)).skipped == 1  # said by predict
    long = tmp_path / "long.csv"
    long.write_text("text\n" + "word " * 40_000 + "\nshort one\n")
    assert [len(t) for t in texts_to_predict(str(long))] == [200_000, 9]
    assert texts_to_predict("refund").skipped == 0
    jpeg = tmp_path / "x.csv"
    jpeg.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" + bytes(range(256)) * 4)
    with pytest.raises(DatasetError, match="x.csv is not a text table: its first line is not UTF-8 text"):
        read_texts(jpeg)
    table = tmp_path / "t.csv"
    table.write_text("text,label\na b,x\n")
    with pytest.raises(DatasetError, match="data.text_column and data.label_column are both 'text'"):
        read_texts(table, text_column="text", label_column="text")


def test_a_mismatch_of_thousands_of_classes_is_one_short_line() -> None:
    """Before: `evaluate --data` on a file of 5,000 labels printed one error line of 34,095 characters."""
    from tlcore.results.evaluate import _some

    words = _some([f"label{i}" for i in range(5000)])
    assert words.endswith("and 4,992 more") and len(words) < 120
    assert _some(["a", "b"]) == "a, b"


def test_labelled_target_pictures_that_are_also_the_target_test_are_said(tmp_path: Path) -> None:
    """Issue 36: the few labelled target pictures were a subset of the folder used as the unlabelled target and as the
    labelled target test; nothing said that the test's accuracy then includes the pictures that chose the method."""
    import shutil

    from tlcore.spec.adapt_spec import labelled_overlap_notes
    from train_fixtures import make_colour_classes

    test = make_colour_classes(tmp_path / "target_test")
    few = tmp_path / "few"
    for folder in sorted(p for p in test.iterdir() if p.is_dir()):
        (few / folder.name).mkdir(parents=True)
        for picture in sorted(folder.iterdir())[:2]:
            shutil.copy(picture, few / folder.name / picture.name)
    shared = sum(1 for _ in few.rglob("*.*"))
    notes = labelled_overlap_notes(str(few), str(test), [str(test)])
    assert len(notes) == 2 and notes[0].startswith(f"{shared} of your {shared} labelled target pictures are also in "
                                                   "target_test, the labelled target test")
    assert "among the unlabelled target pictures" in notes[1]
    apart = make_colour_classes(tmp_path / "other_test", size=44)  # other pictures
    assert labelled_overlap_notes(str(few), "", [str(apart)]) == []
    assert labelled_overlap_notes("", str(test), [str(test)]) == []


def test_a_target_of_unreadable_pictures_is_refused_before_the_runs(tmp_path: Path) -> None:
    """Issue 37: a target folder of two unreadable .jpg files passed the check; 4 of 5 comparison runs then failed at
    their start and the report said "4 runs are not finished yet"."""
    from tlcore.spec.adapt_spec import AdaptError
    from tlcore.training.preflight import check_before_queueing
    from train_fixtures import make_colour_classes, tiny_config

    source = make_colour_classes(tmp_path / "source", per_class=4, size=32)
    target = tmp_path / "target"
    target.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (target / name).write_bytes(b"not a picture at all" * 10)
    config = tiny_config(source, adapt={"method": "mcc", "target": str(target)})
    with pytest.raises(AdaptError, match="has 0 readable picture"):
        check_before_queueing(config)
    good = make_colour_classes(tmp_path / "good_target", per_class=2, size=32)
    check_before_queueing(tiny_config(source, adapt={"method": "mcc", "target": str(good)}))


def test_a_path_given_to_predict_is_never_classified_as_a_text(tmp_path: Path) -> None:
    """Before: `predict RUN PATH` with a FIFO, a link to /dev/zero or a missing file classified the path string
    itself as a text, without a word. A text is still a text; a path that is there is read as a file or refused."""
    from tlcore.errors import TransferLabError
    from tlcore.results.text_predict import texts_to_predict

    fifo = tmp_path / "fifo.txt"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.csv"
    zero.symlink_to("/dev/zero")
    for path, problem in ((fifo, "pipe"), (zero, "device"), (tmp_path, "folder"),
                          (tmp_path / "missing.csv", "no such file")):
        with pytest.raises(TransferLabError, match=problem):
            texts_to_predict(str(path))
    assert texts_to_predict("my parcel never came, see order.csv") == ["my parcel never came, see order.csv"]
    assert texts_to_predict("refund") == ["refund"]
