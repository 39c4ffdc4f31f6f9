"""The web page in a real headless Chromium (Debian's `chromium` + `chromium-driver`, through Selenium) against a
live `caprl-index serve`: a query shows the right figure card with its images loaded and the box drawn where
the figure is; document text stays text; the document view outlines figures; errors reach the page.
Screenshots go to build/test-artifacts/."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from caprl_index.config import Settings
from caprl_index.testing.service import PAGE_H, PAGE_W, DemoIndex, ServeProcess, build_demo_index

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "build" / "test-artifacts"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
# Without the background-networking switches Chromium's own connections hang on a closed network.
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1366,900",
)  # fmt: skip


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DemoIndex, str]]:
    root = tmp_path_factory.mktemp("serve-web")
    settings = Settings(qdrant_path=root / "index" / "qdrant")
    index = build_demo_index(settings, root / "docs")
    env = {"CAPRL_QDRANT_PATH": str(settings.qdrant_path), "CAPRL_INGEST_ROOTS": str(index.folder)}
    with ServeProcess(env) as proc:
        yield index, proc.url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="caprl-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # An explicit driver path: Selenium Manager never runs (it would try to download one).
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def search(driver: Any, url: str, query: str) -> list[Any]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url + "/")
    box = WebDriverWait(driver, 30).until(ec.element_to_be_clickable((By.ID, "q")))
    box.clear()
    box.send_keys(query, Keys.ENTER)  # the keyboard alone runs a search
    WebDriverWait(driver, 30).until(lambda d: "result" in d.find_element(By.ID, "search-status").text)
    return driver.find_elements(By.CSS_SELECTOR, "#results .card")


def loaded(driver: Any, img: Any) -> bool:
    return bool(driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img))


def test_a_query_shows_the_figure_card_with_its_images_and_box(browser: Any, demo: tuple[DemoIndex, str]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    index, url = demo
    cards = search(browser, url, "bar chart of installed solar capacity by year")
    assert cards, "the page shows results"
    first = cards[0]
    assert first.get_attribute("data-id") == index.point_ids[("energy-report.pdf", 2, "figure")]
    assert first.get_attribute("data-kind") == "figure"
    crop = first.find_element(By.CSS_SELECTOR, ".crop-img")
    page = first.find_element(By.CSS_SELECTOR, ".page-img")
    WebDriverWait(browser, 30).until(lambda d: loaded(d, crop) and loaded(d, page))
    assert browser.execute_script("return arguments[0].naturalWidth", crop) == 360  # the 360 pt wide crop at 1 px/pt
    meta = first.find_element(By.CSS_SELECTOR, ".meta").text
    assert "energy-report.pdf" in first.text and "chart" in meta and "vllm" in meta and "page\n2" in meta
    box = first.find_element(By.CSS_SELECTOR, ".box")
    frame = first.find_element(By.CSS_SELECTOR, ".page-frame")
    assert box.is_displayed()
    b, f = box.rect, frame.rect
    # The box sits where the figure is on the page: bbox (60, 380, 420, 640) of a 595 x 842 pt page.
    assert abs((b["x"] - f["x"]) / f["width"] - 60 / PAGE_W) < 0.02
    assert abs((b["y"] - f["y"]) / f["height"] - 380 / PAGE_H) < 0.02
    assert abs(b["width"] / f["width"] - 360 / PAGE_W) < 0.02
    assert abs(b["height"] / f["height"] - 260 / PAGE_H) < 0.02
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "web-search.png"))


def test_document_text_is_shown_as_text(browser: Any, demo: tuple[DemoIndex, str]) -> None:
    from selenium.webdriver.common.by import By

    _, url = demo
    cards = search(browser, url, "national health survey of adults")
    text = next(c for c in cards if "health-survey.pdf" in c.text).find_element(By.CSS_SELECTOR, ".text").text
    assert '<img src=x onerror="window.injected=1">' in text and "<script>" in text
    assert browser.execute_script("return window.injected") is None
    assert not browser.find_elements(By.CSS_SELECTOR, "#results img[src='x'], #results script")


def test_document_view_outlines_the_figures(browser: Any, demo: tuple[DemoIndex, str]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _, url = demo
    cards = search(browser, url, "solar capacity chart")
    cards[0].find_element(By.CSS_SELECTOR, ".file-link").click()
    WebDriverWait(browser, 30).until(lambda d: "outlined" in d.find_element(By.ID, "doc-status").text)
    pages = browser.find_elements(By.CSS_SELECTOR, "#doc-pages .doc-page")
    assert len(pages) == 3 and browser.find_element(By.ID, "doc-title").text == "energy-report.pdf"
    boxes = pages[1].find_elements(By.CSS_SELECTOR, ".box")
    assert len(boxes) == 1 and boxes[0].get_attribute("title") == "chart (vllm)"
    assert not pages[0].find_elements(By.CSS_SELECTOR, ".box")
    img = pages[1].find_element(By.TAG_NAME, "img")
    browser.execute_script("arguments[0].scrollIntoView()", img)
    WebDriverWait(browser, 30).until(lambda d: loaded(d, img))
    assert browser.save_screenshot(str(ARTIFACTS / "web-document.png"))


def test_an_ingest_refused_by_the_server_says_why(browser: Any, demo: tuple[DemoIndex, str]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _, url = demo
    browser.get(url + "/")
    browser.find_element(By.CSS_SELECTOR, "nav button[data-view='jobs']").click()
    browser.find_element(By.ID, "paths").send_keys("/etc")
    browser.find_element(By.CSS_SELECTOR, "#ingest-form button[type='submit']").click()
    WebDriverWait(browser, 30).until(lambda d: "Error" in d.find_element(By.ID, "jobs-status").text)
    assert "outside the server's ingest roots" in browser.find_element(By.ID, "jobs-status").text
