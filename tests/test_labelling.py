"""Labelling a few target pictures (issue 38): one click (or key) each on the Data page, or `data label` on the
command line, into the folder of class sub-folders `adapt.labelled` takes; skip and undo; counts against a goal."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import tlcore_in_process
from tlcore.spec.adapt_spec import scan_labelled_target, scan_target
from tlcore.data.labelling import GOAL_PER_CLASS, LabelBook, LabellingError
from train_fixtures import make_colour_classes


@pytest.fixture
def target(tmp_path: Path) -> Path:
    return make_colour_classes(tmp_path / "target", per_class=8, size=36)  # its folder names are ignored


def test_labels_skips_and_undo_make_the_folder_a_run_reads(target: Path, tmp_path: Path) -> None:
    classes = ["blue", "green", "red"]
    book = LabelBook(tmp_path / "few", classes)
    found = scan_target(str(target))
    first = book.next_pictures(found.paths, found.sha256, 3)
    book.label(first[0], "red")
    book.skip(first[1])
    book.label(first[2], "green")
    assert book.counts() == {"blue": 0, "green": 1, "red": 1}
    assert book.next_pictures(found.paths, found.sha256, 1)[0] == found.paths[3]  # neither labelled nor skipped
    undone = book.undo()
    assert undone["action"] == "label" and book.counts()["green"] == 0  # the copy is gone too
    assert book.next_pictures(found.paths, found.sha256, 1)[0] == first[2]  # offered again
    book.label(first[0], "blue")  # a picture labelled again: the new label wins, one copy
    assert book.counts() == {"blue": 1, "green": 0, "red": 0}
    read = scan_labelled_target(str(book.folder), classes)  # what a run reads: the log file is not a picture
    assert [(p.parent.name, classes[i]) for p, i, _ in read] == [("blue", "blue")]
    with pytest.raises(LabellingError, match="'purple' is not a class of the data"):
        book.label(found.paths[4], "purple")
    assert not book.goal_reached()
    for picture in book.next_pictures(found.paths, found.sha256, 3 * GOAL_PER_CLASS - 1):
        counts = book.counts()
        book.label(picture, min(counts, key=counts.get))  # the class with the fewest so far
    assert book.goal_reached() and all(n == GOAL_PER_CLASS for n in book.counts().values())


def test_the_cli_labels_pictures_into_the_folder(target: Path, tmp_path: Path) -> None:
    pictures = sorted(str(p) for p in target.rglob("*.png"))[:2]
    into = tmp_path / "few"
    data = make_colour_classes(tmp_path / "data", per_class=4, size=36)
    done = tlcore_in_process("data", "label", *pictures, "--as", "red", "--into", str(into), "--data", str(data))
    assert done.returncode == 0 and "blue 0, green 0, red 2 (the goal: 5 per class)" in done.stdout
    refused = tlcore_in_process("data", "label", pictures[0], "--as", "purple", "--into", str(into), "--data", str(data))
    assert refused.returncode == 1 and "'purple' is not a class of the data" in refused.stderr
    undone = tlcore_in_process("data", "label", "--undo", "--into", str(into))
    assert undone.returncode == 0 and "red 1" in undone.stdout


def test_the_data_page_labels_target_pictures_one_click_each(target: Path, tmp_path: Path, tl_home: Path) -> None:
    """The user names 5 target pictures per class with one click each (a key works too), skips and undoes; the
    folder becomes the experiment's labelled target pictures, counted against the goal."""
    from streamlit.testing.v1 import AppTest

    from conftest import ROOT

    source = make_colour_classes(tmp_path / "source", per_class=8, size=36)
    app = AppTest.from_file(str(ROOT / "pages" / "1_data.py"), default_timeout=120).run()
    app.radio(key="data:app.data_kind").set_value("Folder on this computer").run()
    app.text_input(key="data:app.folder").input(str(source)).run()
    app.text_input(key="data:adapt.target").input(str(target)).run()
    assert not app.exception
    classes = ["blue", "green", "red"]
    app.button(key="data.label.skip").click().run()
    for index in range(3 * GOAL_PER_CLASS):
        app.button(key=f"data.label.{index % 3}").click().run()
        assert not app.exception
    app.button(key="data.label.undo").click().run()  # the last one (red) taken back, then named again
    app.button(key="data.label.2").click().run()
    experiment = app.session_state["_experiment"]
    folder = Path(experiment.get("adapt.labelled"))
    assert folder.parent.name == "labelled" and folder.name == experiment.id  # the run's labelled pictures now
    read = scan_labelled_target(str(folder), classes)
    assert sorted(classes[i] for _, i, _ in read) == sorted(classes * GOAL_PER_CLASS)
    assert any(f"{3 * GOAL_PER_CLASS} labelled target pictures: blue 5, green 5, red 5" in m.value
               for m in app.markdown)
    assert any("a comparison of adaptation methods now chooses with them" in s.value for s in app.success)
    assert [b for b in app.button if b.key == "data.label.0"][0].proto.shortcut == "1"  # its key


def test_labels_from_many_threads_at_once_are_all_kept(target: Path, tmp_path: Path) -> None:
    """Found in the browser: two quick keys are two reruns of the page, in two threads of one server; they shared
    one temporary file (the log then held "]\\n]" and read as empty) and could lose each other's label."""
    import threading

    book = LabelBook(tmp_path / "few", ["blue", "green", "red"])
    pictures = sorted(target.rglob("*.png"))[:12]
    threads = [threading.Thread(target=book.label, args=(p, "blue")) for p in pictures]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert book.counts()["blue"] == 12 and len(book.seen()) == 12


def test_the_folder_becomes_the_runs_labelled_pictures_only_once_every_class_has_one(target: Path, tmp_path: Path,
                                                                                     tl_home: Path) -> None:
    """Review: the first click set adapt.labelled, and every later run then failed after queueing ("no picture of
    green") until each class had a label; an undo back to nothing left it set."""
    from streamlit.testing.v1 import AppTest

    from conftest import ROOT

    source = make_colour_classes(tmp_path / "source", per_class=8, size=36)
    app = AppTest.from_file(str(ROOT / "pages" / "1_data.py"), default_timeout=120).run()
    app.radio(key="data:app.data_kind").set_value("Folder on this computer").run()
    app.text_input(key="data:app.folder").input(str(source)).run()
    app.text_input(key="data:adapt.target").input(str(target)).run()
    for index in (0, 1):
        app.button(key=f"data.label.{index}").click().run()
    assert app.session_state["_experiment"].get("adapt.labelled") == ""  # red has none yet
    app.button(key="data.label.2").click().run()
    assert app.session_state["_experiment"].get("adapt.labelled").endswith(app.session_state["_experiment"].id)
    app.button(key="data.label.undo").click().run()
    assert app.session_state["_experiment"].get("adapt.labelled") == ""
