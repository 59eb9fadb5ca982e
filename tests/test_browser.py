"""The app in a real headless Chromium, served by `streamlit run app.py`: what a user sees and clicks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import chromium_or_skip, streamlit_server

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,1600")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with streamlit_server(tmp_path_factory.mktemp("browser_home")) as url:
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    binary, driver_path = chromium_or_skip()
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium')}")
    options.binary_location = binary
    driver = webdriver.Chrome(service=webdriver.ChromeService(driver_path), options=options)
    yield driver
    driver.quit()


def wait_for(browser, css: str, predicate, timeout: float = 60.0):
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e.text for e in browser.find_elements(By.CSS_SELECTOR, css)]
        if predicate(found):
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting on {css}: last saw {found}")


METRICS = '[data-testid="stMetricValue"]'


def test_data_page_shows_the_sample_data(browser, app_url: str) -> None:
    browser.get(app_url)
    assert wait_for(browser, METRICS, lambda v: v[:3] == ["4", "240", "0"])
    assert wait_for(browser, "body", lambda v: "square_000.jpg" in v[0])  # the sample grid's captions


def test_clicking_a_block_sets_the_freeze_boundary(browser, app_url: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    browser.get(f"{app_url}/freeze")
    assert wait_for(browser, METRICS, lambda v: v[:1] == ["2,562"])  # head only by default
    bars = browser.find_elements(By.CSS_SELECTOR, "g.point path")
    assert len(bars) == 9  # EfficientNet-Lite0's groups, stem to head
    target = bars[4]  # blocks.3: freeze stem .. blocks.2
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", target)
    time.sleep(1)
    bar = browser.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.width]", target)
    drag = browser.find_element(By.CSS_SELECTOR, "rect.nsewdrag")
    area = browser.execute_script("const r = arguments[0].getBoundingClientRect(); "
                                  "return [r.left, r.top, r.width, r.height]", drag)
    dx = bar[0] + bar[2] / 2 - (area[0] + area[2] / 2)
    dy = max(bar[1], area[1]) + 20 - (area[1] + area[3] / 2)
    ActionChains(browser).move_to_element_with_offset(drag, int(dx), int(dy)).click().perform()
    trainable = 198_480 + 446_784 + 1_652_640 + 1_017_600 + 2_562
    assert wait_for(browser, METRICS, lambda v: v[:1] == [f"{trainable:,}"])
