"""The admin console in headless Chromium (selenium): an operator's round from the login to
the audit entry of a replay, a viewer who sees no payload, the main actions with the keyboard
alone, and the pages on a 390 px wide screen. The dashboard's screenshot is docs/dashboard.png
(shown in the README); the narrow one docs/console-390.png."""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import Engine

from engine.admin.state import StaticSource, StaticState
from engine.channels.admin_settings import AdminSettings
from engine.channels.loader import parse_channels
from engine.db import make_engine
from engine.errors import IdentityConflict
from engine.journal.message_tables import State
from engine.migrate import upgrade
from engine.pipeline.identify import review
from tests.browser.pages import go
from tests.integration import admin_seed as seed
from tests.integration.admin_harness import PASSWORD, Admin, serve

DOCS = Path(__file__).resolve().parents[2] / "docs"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHANNELS = """
engine:
  admin: {host: 127.0.0.1, port: 0, metrics_refresh_seconds: 1}
channels:
  - name: hospital_adt
    source: {type: mllp, port: 2575}
    accept: ["*"]
    destinations: {store: {type: record_store}}
  - name: lab
    source: {type: mllp, port: 2576}
    accept: ["*"]
    destinations: {store: {type: record_store}}
  - name: radiology
    source: {type: mllp, port: 2577}
    accept: ["*"]
    destinations: {store: {type: record_store}}
  - name: pharmacy
    source: {type: mllp, port: 2578}
    accept: ["*"]
    destinations: {store: {type: record_store}}
"""
STATES = StaticState(
    [
        StaticSource("hospital_adt"),
        StaticSource("lab"),
        StaticSource("radiology", "paused"),
        StaticSource("pharmacy", "failed", bound=False),
    ]
)


@dataclass
class World:
    admin: Admin
    dead_letter: int
    review_id: int


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromedriver are needed in CI (.ci/browser-deps)")
        pytest.skip("headless Chromium not installed (and CI unset)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--window-size=1280,1000", "--lang=en"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.implicitly_wait(3)
    yield driver
    driver.quit()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'engine.db'}", durability="normal")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def world(db: Engine) -> Iterator[World]:
    dead, rid = _traffic(db)
    config = parse_channels(CHANNELS)
    assert config.engine.admin == AdminSettings(port=0, metrics_refresh_seconds=1)
    with serve(db, config, STATES) as admin:
        yield World(admin, dead, rid)


def _traffic(db: Engine) -> tuple[int, int]:
    """An hour of traffic on two channels, a patient whose results carried only a local id,
    one of them dead-lettered, a held result and an identity review."""
    now = datetime.now(UTC)
    pid = seed.patient(db)
    for minute in range(59, 0, -1):  # oldest first: the journal's ids follow arrival
        at = now - timedelta(minutes=minute)
        for n in range(2 + round(2 * math.sin(minute / 5))):
            cid = f"A{minute}-{n}"
            seed.message(db, cid, channel="hospital_adt", kind=("ADT", "A01"), received_at=at)
        if minute % 3 == 0 or minute < 8:
            seed.message(db, f"L{minute}", received_at=at)
    dead = seed.message(db, "DL-1", state=State.DEAD_LETTERED, error_code="no_route")
    seed.message(db, "H-1", channel="radiology", state=State.HELD)
    mid = seed.message(db, "R-1", state=State.REVIEW)
    with db.begin() as conn:
        review.open_review(conn, mid, "lab", IdentityConflict("traits differ", [pid]), now)
        [opened] = review.reviews(conn)
    return dead, int(opened["id"])


def submit(browser: WebDriver, button: WebElement | Callable[[], None]) -> None:
    """Click a button (or run keys) and wait for the page it leads to."""
    go(browser, button if callable(button) else button.click)


def log_in(browser: WebDriver, world: World, name: str) -> None:
    browser.delete_all_cookies()
    browser.get(world.admin.url + "/login")
    browser.find_element(By.ID, "name").send_keys(name)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    submit(browser, browser.find_element(By.CSS_SELECTOR, "form[action='/login'] button"))


def nav(browser: WebDriver, label: str) -> None:
    submit(browser, browser.find_element(By.LINK_TEXT, label))


def shot(browser: WebDriver, name: str) -> Path:
    path = DOCS / name
    assert browser.save_screenshot(str(path))
    assert path.stat().st_size > 10_000
    return path


def test_an_operator_finds_a_dead_letter_by_ins_replays_it_with_a_reason_and_sees_the_audit(
    browser: WebDriver, world: World
) -> None:
    log_in(browser, world, "operator")
    tiles = browser.find_elements(By.CSS_SELECTOR, "li.tile")
    assert [t.find_element(By.TAG_NAME, "h2").text for t in tiles] == [
        "hospital_adt",
        "lab",
        "pharmacy",
        "radiology",
    ]
    tones = [t.get_attribute("class") for t in tiles]
    assert tones == ["tile good", "tile bad", "tile bad", "tile warn"]
    assert len(browser.find_elements(By.CSS_SELECTOR, "li.tile svg.spark polyline")) == 4
    shot(browser, "dashboard.png")

    nav(browser, "Messages")
    browser.find_element(By.ID, "f-patient").send_keys(seed.INS)
    submit(browser, browser.find_element(By.CSS_SELECTOR, "form.filters button"))
    found = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "table.list td:first-child a")]
    assert str(world.dead_letter) in found
    submit(browser, browser.find_element(By.LINK_TEXT, str(world.dead_letter)))

    segments = browser.find_elements(By.CSS_SELECTOR, ".payload .segments .seg")
    assert [s.text for s in segments] == ["MSH", "PID", "OBX"]
    assert "no_route" in browser.find_element(By.CSS_SELECTOR, "dl.facts").text
    browser.find_element(By.ID, "reason").send_keys("route added for LAB-A")
    submit(browser, browser.find_element(By.CSS_SELECTOR, "button[value='replay']"))
    assert "replay: 1 done" in browser.find_element(By.CSS_SELECTOR, ".notice").text
    assert browser.find_element(By.CSS_SELECTOR, "h1 .badge").text == "received"

    nav(browser, "Audit")
    rows = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "table.audit tbody tr")]
    [replayed] = [r for r in rows if "user:operator replay message" in r]
    assert "route added for LAB-A" in replayed and str(world.dead_letter) in replayed
    viewed = f"user:operator view_payload message {world.dead_letter}"
    assert sum(viewed in r for r in rows) == 2  # before the replay, and after it


def test_a_viewer_sees_the_messages_metadata_but_never_its_payload(
    browser: WebDriver, world: World
) -> None:
    log_in(browser, world, "viewer")
    assert not browser.find_elements(By.LINK_TEXT, "Audit")
    browser.get(f"{world.admin.url}/messages/{world.dead_letter}")
    assert "no_route" in browser.find_element(By.CSS_SELECTOR, "dl.facts").text
    assert not browser.find_elements(By.CSS_SELECTOR, ".payload, #reason")
    source = browser.page_source
    assert "PAT-TROIS" not in source and "PID" not in source and "000003" not in source
    browser.get(world.admin.url + "/messages")
    assert not browser.find_elements(By.ID, "f-patient")


def focused(browser: WebDriver) -> WebElement:
    element: WebElement = browser.switch_to.active_element
    return element


def tab_to(browser: WebDriver, wanted: Callable[[WebElement], bool], most: int = 60) -> WebElement:
    """Press Tab until the focused element is the one wanted (fails after ``most`` presses)."""
    for _ in range(most):
        focused(browser).send_keys(Keys.TAB)
        element = focused(browser)
        if wanted(element):
            return element
    raise AssertionError("never reached with the Tab key")


def test_the_main_actions_are_reached_with_the_keyboard_alone(
    browser: WebDriver, world: World
) -> None:
    browser.get(world.admin.url + "/login")
    name = focused(browser)  # autofocus
    assert name.get_attribute("id") == "name"
    submit(browser, lambda: name.send_keys("operator", Keys.TAB, PASSWORD, Keys.ENTER))

    first = tab_to(browser, lambda e: True)
    assert first.text == "Skip to content"
    link = tab_to(browser, lambda e: e.text == "Dead letters")
    assert browser.execute_script("return getComputedStyle(arguments[0]).outlineStyle", link) in (
        "solid",
        "auto",
    )
    submit(browser, lambda: link.send_keys(Keys.ENTER))
    box = tab_to(browser, lambda e: e.get_attribute("type") == "checkbox")
    box.send_keys(Keys.SPACE)
    assert box.is_selected()
    reason = tab_to(browser, lambda e: e.get_attribute("id") == "reason")
    reason.send_keys("replayed from the keyboard")
    replay = tab_to(browser, lambda e: e.get_attribute("value") == "replay")
    submit(browser, lambda: replay.send_keys(Keys.ENTER))
    assert "replay: 1 done" in browser.find_element(By.CSS_SELECTOR, ".notice").text


def test_the_dashboard_refreshes_itself_but_never_under_the_keyboard_focus(
    browser: WebDriver, world: World
) -> None:
    log_in(browser, world, "viewer")
    tiles = browser.find_element(By.ID, "tiles")
    every = int(tiles.get_attribute("data-refresh") or 0)
    assert every == 2  # metrics_refresh_seconds: 1, and never faster than 2 s
    link = tab_to(browser, lambda e: e.text == "lab")
    time.sleep(every * 2 + 0.5)
    assert tiles.get_attribute("data-refreshed") is None  # not swapped under the focus
    assert focused(browser) == link
    browser.execute_script("document.activeElement.blur()")
    WebDriverWait(browser, every * 3).until(lambda b: tiles.get_attribute("data-refreshed"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#tiles li.tile")) == 4


def test_every_page_fits_a_390_px_wide_screen_without_scrolling_sideways(
    browser: WebDriver, world: World
) -> None:
    log_in(browser, world, "operator")
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True},
    )
    base = world.admin.url
    pages = [
        "/",
        f"/messages?patient={seed.INS}",
        f"/messages/{world.dead_letter}",
        "/dead-letters",
        "/dead-letters/bulk?channel=lab",
        "/reviews",
        f"/reviews/{world.review_id}",
        "/held",
        "/audit",
    ]
    for path in pages:
        browser.get(base + path)
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert browser.execute_script("return window.innerWidth") == 390
        assert width <= 390, f"{path} is {width} px wide"
    browser.get(base + "/")
    shot(browser, "console-390.png")
