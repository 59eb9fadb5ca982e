"""Labelling a few target pictures in a real headless Chromium (issue 38): a user names 5 target pictures per
class with the number keys, skips one, undoes one, in well under 3 minutes; the folder becomes the experiment's
labelled target pictures, and a comparison of the adaptation methods started on the Compare page then chooses
with them, beside its label-free choice (the choice's rule is pinned by tests/test_labelled_target.py)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from conftest import chromium_or_skip, streamlit_server
from tlcore.spec.adapt_spec import scan_labelled_target
from train_fixtures import make_colour_classes
from test_browser import FLAGS, settled

pytestmark = pytest.mark.slow("a browser session; tests/test_labelling.py pins the same clicks through AppTest")


def _count_text(page, text: str) -> None:
    page.get_by_text(re.compile(re.escape(text))).first.wait_for(timeout=60_000)


def _press_until(page, key: str, expected: str, before: str) -> None:
    """Press a key until the page shows `expected`; on a busy machine a key pressed while the page reruns may be
    dropped by the browser, and is pressed again only while the page still shows `before` (never twice in effect)."""
    for attempt in range(4):
        page.keyboard.press(key)
        try:
            page.get_by_text(re.compile(re.escape(expected))).first.wait_for(timeout=30_000)
            return
        except Exception:  # noqa: BLE001 - Playwright's timeout
            settled(page)
            if not page.get_by_text(re.compile(re.escape(before))).count() or attempt == 3:
                raise


def _compare_the_methods_that_fit(page) -> None:
    """On the Compare page: compare the adaptation methods that fit the freeze plan, 1 epoch each, and start."""
    page.get_by_role("link", name="7 · Compare").click()
    page.get_by_role("heading", name="7 · Compare settings").wait_for()
    settled(page)
    page.locator("[data-testid=stMain] [data-testid=stSelectbox]").first.click()
    page.get_by_role("option", name="Domain-adaptation method").click()
    settled(page)
    page.get_by_role("button", name="Every method that fits this freeze plan").click()
    settled(page)
    epochs = page.get_by_role("spinbutton", name="Epochs per run")
    epochs.fill("1")
    epochs.press("Enter")
    settled(page)
    page.get_by_role("button", name="Run the comparison").click()
    settled(page)


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
        _press_until(page, "S", "Undo the last click", "0 labelled")  # skip the first one: the undo appears
        counts = {"blue": 0, "green": 0, "red": 0}
        def shown() -> str:
            return ", ".join(f"{c} {n} of 5" for c, n in counts.items())

        for index in range(15):  # 1, 2, 3: blue, green, red; each key waits for its label to be counted
            before = shown()
            counts[["blue", "green", "red"][index % 3]] += 1
            _press_until(page, str(index % 3 + 1), shown(), before)
        _press_until(page, "U", "red 4 of 5", "red 5 of 5")  # the last one (red) back, then named again by a click
        page.get_by_role("button", name=re.compile(r"^red")).click()
        _count_text(page, "blue 5 of 5, green 5 of 5, red 5 of 5")
        seconds = time.monotonic() - started
        page.get_by_text("a comparison of adaptation methods now chooses with them").wait_for()
        _compare_the_methods_that_fit(page)
        verdict = page.get_by_text(re.compile(r"Chosen with your 15 labelled target pictures \(no run trained on "
                                              r"them\): \S"))
        verdict.first.wait_for(timeout=600_000)
        said = verdict.first.inner_text()
        browser.close()
    assert seconds < 180, seconds
    assert "Chosen without target labels" in said  # both choices side by side, as the table has them
    folders = sorted((home / "labelled").iterdir())
    assert len(folders) == 1
    read = scan_labelled_target(str(folders[0]), ["blue", "green", "red"])
    assert len(read) == 15 and {i for _, i, _ in read} == {0, 1, 2}
