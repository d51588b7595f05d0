"""Navigation shared by the browser tests."""

from __future__ import annotations

from collections.abc import Callable

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait


def go(browser: WebDriver, action: Callable[[], None]) -> None:
    """Run ``action`` (a click, keys) and wait for the page it leads to, loaded.

    The old page goes stale once the new one is committed, before it has loaded: an element
    clicked then may be one Chrome is still replacing ("Node with given id does not belong to
    the document", seen on Chromium 156)."""
    old = browser.find_element(By.TAG_NAME, "html")
    action()
    wait = WebDriverWait(browser, 10)
    wait.until(expected_conditions.staleness_of(old))
    wait.until(lambda b: b.execute_script("return document.readyState") == "complete")
