"""Headless Chromium through selenium, shared by the site's browser test and the README screenshot.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) and ``selenium``
(the ``test`` extra).
"""

from __future__ import annotations

import shutil

INSTALL_HINT = "apt-get install chromium chromium-driver"


def binaries() -> tuple[str, str] | None:
    """(browser, chromedriver) paths, or None where either is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def headless_driver(width: int, height: int, console_log: bool = False):
    """A headless Chrome driver with a window of ``width`` x ``height`` that may read file:// pages.
    ``console_log`` keeps the page's console messages for ``driver.get_log("browser")``."""
    found = binaries()
    if found is None:
        raise RuntimeError(f"needs chromium and chromedriver: {INSTALL_HINT}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = found
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    # no sandbox and no /dev/shm: containers and CI runners as root have neither to spare
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--window-size={width},{height}", "--allow-file-access-from-files"):
        options.add_argument(flag)
    if console_log:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver_path), options=options)
