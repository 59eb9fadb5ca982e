"""The Data page, driven by widget keys through Streamlit's AppTest, with the real engine."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from streamlit.testing.v1 import AppTest

from app_fixtures import choices_of
from conftest import ROOT, make_class_folders, streamlit_server

PAGE = str(ROOT / "pages" / "1_data.py")


def run_page() -> AppTest:
    app = AppTest.from_file(PAGE, default_timeout=60)
    app.run()
    assert not app.exception, app.exception
    return app


def test_sample_data_is_scanned_and_split_by_default(tl_home: Path) -> None:
    app = run_page()
    metrics = {m.label: m.value for m in app.metric}
    assert metrics == {"Classes": "4", "Usable images": "240", "Skipped files": "0"}
    assert not app.error
    app.number_input(key="data:data.split_seed").set_value(5)
    app.button(key="data.make_split").click().run()
    assert not app.exception
    assert app.success and "saved to" in app.success[0].value
    saved = list((tl_home / "splits").glob("*-seed5.json"))
    assert len(saved) == 1 and choices_of(app)["data.manifest"] == str(saved[0])


def test_folder_with_problems_shows_errors_not_tracebacks(tmp_path: Path) -> None:
    app = run_page()
    app.radio(key="data:app.data_kind").set_value("Folder on this computer").run()
    app.text_input(key="data:app.folder").input(str(tmp_path / "missing")).run()
    assert not app.exception
    assert "no such folder or zip" in app.error[0].value

    single = make_class_folders(tmp_path / "single", {"only": 3})
    app.text_input(key="data:app.folder").input(str(single)).run()
    assert "only one class" in app.error[0].value

    empty = make_class_folders(tmp_path / "withempty", {"a": 3, "b": 3})
    (empty / "c").mkdir()
    app.text_input(key="data:app.folder").input(str(empty)).run()
    assert not app.exception
    assert any("class 'c' has no usable images" in e.value for e in app.error)
    assert not [b for b in app.button if b.key == "data.make_split"]  # no split of a broken set


def test_broken_files_are_listed_with_the_reason(tmp_path: Path) -> None:
    root = make_class_folders(tmp_path / "d", {"ok": 25, "dent": 21})
    (root / "dent" / "broken.jpg").write_text("not a picture")
    app = run_page()
    app.radio(key="data:app.data_kind").set_value("Folder on this computer").run()
    app.text_input(key="data:app.folder").input(str(root)).run()
    assert not app.exception
    skipped = app.dataframe[0].value
    assert skipped["file"].tolist() == ["dent/broken.jpg"] and "not an image" in skipped["why"].iloc[0]


def test_readme_app_command_serves_the_app(tl_home: Path) -> None:
    """`streamlit run app.py` (the README's last step) starts and says it is healthy; app.py itself runs its
    navigation to the first page without an exception (a broken app.py fails here)."""
    with streamlit_server(tl_home) as url:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as response:
            assert response.read() == b"ok"

        app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
        assert not app.exception


def test_a_text_file_is_read_and_split_on_the_data_page(tl_home: Path, tmp_path: Path) -> None:
    """Issue 27: the bundled tickets and a CSV path give the text report (counts, skipped rows by line) and the
    same split; a label column that cannot be found is one error line, and setting it brings the report."""
    app = run_page()
    app.radio(key="data:app.data_kind").set_value("Bundled sample texts").run()
    assert not app.exception, app.exception
    metrics = {m.label: m.value for m in app.metric}
    assert metrics == {"Classes": "4", "Usable texts": "240", "Skipped rows": "0"}
    app.button(key="data.make_split").click().run()
    assert not app.exception and app.success and "saved to" in app.success[0].value
    assert "support_tickets.csv" in choices_of(app)["data.manifest"]
    csv_file = tmp_path / "reviews.csv"
    rows = ["comment,stars"] + [f"review number {i} was good,good" for i in range(12)] \
        + [f"review number {i} was bad,bad" for i in range(12)] + ["broken,row,here"]
    csv_file.write_text("\n".join(rows) + "\n")
    app.radio(key="data:app.data_kind").set_value("Folder on this computer").run()
    app.text_input(key="data:app.folder").input(str(csv_file)).run()
    assert not app.exception
    assert len(app.error) == 1 and "cannot tell which column holds the labels" in app.error[0].value
    app.text_input(key="data:data.label_column").input("stars").run()
    assert not app.exception and not app.error
    metrics = {m.label: m.value for m in app.metric}
    assert metrics == {"Classes": "2", "Usable texts": "24", "Skipped rows": "1"}
    assert app.dataframe[0].value.to_dict("records") == [{"where": "line 26", "why": "3 fields, the header has 2"}]
    assert choices_of(app)["data.label_column"] == "stars"
