"""The record's pages in headless Chromium (selenium): a professional's view with the lab
trend chart and a document's narrative, the emergency-access form, and the patient's view with
the access log, masking and a personal document. Screenshots go to docs/record-*.png."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.browser.pages import go
from tests.integration.identity_harness import oru, pid
from tests.integration.record_harness import (
    HOSPITAL_DOCTOR,
    INS,
    OUTSIDER,
    TSH_ID,
    RecordWorld,
)

DOCS = Path(__file__).resolve().parents[2] / "docs"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromedriver are needed in CI (.ci/browser-deps)")
        pytest.skip("headless Chromium not installed (and CI unset)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--window-size=1280,2200", "--lang=en"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordWorld]:
    running = RecordWorld(f"sqlite:///{tmp_path / 'engine.db'}", monkeypatch)
    yield running
    running.stop()


def sign_in(browser: WebDriver, world: RecordWorld, token: str) -> None:
    browser.delete_all_cookies()
    browser.get(world.base + "/")
    browser.find_element(By.NAME, "token").send_keys(token)
    submit(browser, "form[action='/login'] button")


def open_record(browser: WebDriver, world: RecordWorld) -> None:
    browser.find_element(By.NAME, "ins").send_keys(INS)
    submit(browser, "form[action='/records'] button")


def submit(browser: WebDriver, css: str) -> None:
    """Click a form's button and wait for the page it leads to (the old one goes stale)."""
    go(browser, browser.find_element(By.CSS_SELECTOR, css).click)


def shot(browser: WebDriver, name: str) -> None:
    path = DOCS / name
    assert browser.save_screenshot(str(path))
    assert path.stat().st_size > 10_000


def test_a_professional_reads_sections_a_lab_trend_and_a_documents_narrative(
    browser: WebDriver, world: RecordWorld
) -> None:
    """DOMAIN.md line 106-110 (content, newest first) and 125-127 (rubriques): the care team's
    doctor sees the sections, a results table with a server-made SVG trend whose reference
    range is shaded, and a document's narrative as escaped HTML without any script."""
    world.admitted_with_documents()
    patient = pid("IPP1", INS)
    values = ("3.9", "4.6", "5.6", "4.2")
    world.engine.send(*(oru(patient, f"K{n}", v) for n, v in enumerate(values)))
    sign_in(browser, world, world.as_(HOSPITAL_DOCTOR))
    open_record(browser, world)
    headings = [h.text for h in browser.find_elements(By.TAG_NAME, "h2")]
    assert headings[:4] == [
        "Medical space",
        "Prevention",
        "Reimbursements (last 24 months)",
        "Personal space",
    ]
    assert "Results and trends" in browser.page_source
    charts = browser.find_elements(By.CSS_SELECTOR, "svg.trend")
    assert charts and browser.find_elements(By.CSS_SELECTOR, "svg.trend rect.range")
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.trend circle")) >= len(values)
    assert "Access log" not in headings  # the patient's, not the professional's
    shot(browser, "record-professional.png")
    submit(browser, f"a[href$='/documents/{TSH_ID}']")
    narrative = browser.find_element(By.CSS_SELECTOR, "article.narrative")
    assert narrative.find_elements(By.TAG_NAME, "h3")
    assert narrative.find_elements(By.CSS_SELECTOR, "table td, p, li")  # rendered, not escaped
    assert "</" not in narrative.text
    assert not browser.find_elements(
        By.CSS_SELECTOR,
        "article.narrative script, article.narrative [href], article.narrative [src]",
    )
    shot(browser, "record-document.png")


def test_an_outsider_breaks_the_glass_and_the_patient_sees_it_masks_and_adds_a_document(
    browser: WebDriver, world: RecordWorld
) -> None:
    """DOMAIN.md line 116-117 (bris de glace: always logged and shown), 120-124 (masking) and
    107-110 (the patient's documents); what the patient types is escaped."""
    patient = world.admitted_with_documents()
    sign_in(browser, world, world.as_(OUTSIDER))
    open_record(browser, world)
    assert "not_authorised" in browser.page_source
    shot(browser, "record-emergency.png")
    browser.find_element(By.NAME, "reason").send_keys("Patient inconscient, urgence vitale")
    submit(browser, "button.danger")
    assert (
        "Emergency access (bris de glace)" in browser.find_element(By.CSS_SELECTOR, ".banner").text
    )
    sign_in(browser, world, patient)
    rows = browser.find_elements(By.CSS_SELECTOR, "table.log tr.emergency")
    assert any("Patient inconscient" in r.text for r in rows)
    submit(browser, f"form[action='/records/{INS}/mask/{TSH_ID}'] button")
    assert (
        browser.find_element(
            By.CSS_SELECTOR, f"form[action='/records/{INS}/mask/{TSH_ID}'] button"
        ).text
        == "Unmask"
    )
    browser.find_element(By.NAME, "title").send_keys("<script>alert(1)</script> Poids")
    browser.find_element(By.NAME, "value").send_keys("61")
    browser.find_element(By.NAME, "unit").send_keys("kg")
    submit(browser, f"form[action='/records/{INS}/personal'] button")
    assert "<script>alert(1)</script> Poids" in browser.find_element(By.TAG_NAME, "body").text
    assert "&lt;script&gt;" in browser.page_source
    shot(browser, "record-patient.png")
    browser.execute_script("document.querySelector('table.log').scrollIntoView()")
    shot(browser, "record-patient-access-log.png")
    assert world.get(world.as_(HOSPITAL_DOCTOR), f"documents/{TSH_ID}").status_code == 404
