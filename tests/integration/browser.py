"""Debian's headless Chromium driven through Debian's chromedriver (Selenium), for the console tests.

The browser's own log is kept (``goog:loggingPrefs``) so a test can assert that a page raised no
console error; :func:`rendered` waits for the mark the console's script sets once a page is drawn.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.conftest import unavailable

LAPTOP = (1366, 900)
PHONE = (390, 844)


@contextlib.contextmanager
def chromium(workdir: Path) -> Iterator[Any]:
    binary, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver_path:
        unavailable("Debian's chromium and chromium-driver are not installed (scripts/setup.sh installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--disable-extensions", f"--user-data-dir={workdir / 'chromium-profile'}",
                f"--window-size={LAPTOP[0]},{LAPTOP[1]}"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(
        service=Service(driver_path, log_output=str(workdir / "chromedriver.log")), options=options
    )
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver: Any) -> list[str]:
    """The page's console errors since the last call (Chromium's SEVERE entries: script errors,
    failed loads, CSP violations)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def rendered(driver: Any, timeout_s: float = 20.0) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout_s).until(lambda d: d.execute_script("return document.body.dataset.rendered === '1'"))


def open_page(driver: Any, url: str, timeout_s: float = 20.0) -> None:
    driver.get(url)
    rendered(driver, timeout_s)
