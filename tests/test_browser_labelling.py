"""Labelling a few target pictures in a real headless Chromium (issue 38): a user names 5 target pictures per
class with the number keys, skips one, undoes one, in well under 3 minutes; the folder becomes the experiment's
labelled target pictures, which a comparison then chooses by (pinned by tests/test_labelled_target.py)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from conftest import chromium_or_skip, streamlit_server
from tlcore.adapt_spec import scan_labelled_target
from train_fixtures import make_colour_classes
from test_browser import FLAGS, settled

pytestmark = pytest.mark.slow("a browser session; tests/test_labelling.py pins the same clicks through AppTest")


def _count_text(page, text: str) -> None:
    page.get_by_text(re.compile(re.escape(text))).first.wait_for(timeout=60_000)


def test_five_target_pictures_per_class_are_labelled_with_keys_in_under_three_minutes(tmp_path: Path) -> None:
    binary, _ = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    source = make_colour_classes(tmp_path / "photos", per_class=8, size=36)
    target = make_colour_classes(tmp_path / "target", per_class=8, size=44)
    home = tmp_path / "home"
    home.mkdir()
    with streamlit_server(home) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=binary, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1500})
        page.set_default_timeout(60_000)
        page.goto(url)
        settled(page)
        page.get_by_text("Folder on this computer").click()
        settled(page)
        folder = page.get_by_label("Folder path")
        folder.fill(str(source))
        folder.press("Enter")
        settled(page)
        target_box = page.get_by_label("Folder or zip of target pictures")
        target_box.fill(str(target))
        target_box.press("Enter")
        settled(page)
        page.get_by_text(re.compile(r"Label a few target pictures here")).click()
        settled(page)
        started = time.monotonic()
        page.get_by_role("heading", name="Target domain (optional)").click()  # the keys go to the page, not a field
        page.keyboard.press("S")  # skip the first one
        page.get_by_role("button", name=re.compile(r"^Undo the last click")).wait_for()
        counts = {"blue": 0, "green": 0, "red": 0}
        for index in range(15):  # 1, 2, 3: blue, green, red; each key waits for its label to be counted
            label = ["blue", "green", "red"][index % 3]
            page.keyboard.press(str(index % 3 + 1))
            counts[label] += 1
            _count_text(page, ", ".join(f"{c} {n} of 5" for c, n in counts.items()))
        page.keyboard.press("U")  # the last one (red) back, then named again with a click
        _count_text(page, "red 4 of 5")
        page.get_by_role("button", name=re.compile(r"^red")).click()
        _count_text(page, "blue 5 of 5, green 5 of 5, red 5 of 5")
        seconds = time.monotonic() - started
        page.get_by_text("a comparison of adaptation methods now chooses with them").wait_for()
        browser.close()
    assert seconds < 180, seconds
    folders = sorted((home / "labelled").iterdir())
    assert len(folders) == 1
    read = scan_labelled_target(str(folders[0]), ["blue", "green", "red"])
    assert len(read) == 15 and {i for _, i, _ in read} == {0, 1, 2}
