"""The one headless-Chromium harness for every page test (CONVENTIONS.md, "Pages").

Debian's ``chromium`` driven through ``chromium-driver`` by selenium, with
``SE_OFFLINE=true`` so selenium never looks for a driver online, and every
network scheme blocked inside the browser: a page that tries to fetch anything
is caught by :meth:`Page.network_requests`, not served.  Tests use the
``browser`` fixture (``tests/conftest.py``) and :func:`open_page`; where the
browser is missing they skip with the reason, except under
``RNNLM_REQUIRE_BROWSER=1`` (set by ``.ci/run``), where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
BLOCKED = ["http://*", "https://*", "ws://*", "wss://*", "ftp://*"]


def missing_reason() -> str | None:
    """Why no browser can run here, or None when one can."""
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        return "Debian's chromium is not installed (apt-get install -y chromium chromium-driver)"
    if not Path(CHROMEDRIVER).exists():
        return "chromium-driver is not installed (apt-get install -y chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


def start_browser(width: int = 1280, height: int = 900):
    """A headless Chromium with network schemes blocked and console and network logs kept."""
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--host-resolver-rules=MAP * ~NOTFOUND",
                "--allow-file-access-from-files", "--disable-background-networking"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": BLOCKED})
    return driver


@dataclass
class Page:
    """An HTML file opened from disk in the shared browser."""

    driver: object
    path: Path

    def js(self, script: str, *args):
        """Run ``script`` in the page (``return ...`` to get a value back)."""
        return self.driver.execute_script(script, *args)

    def console_errors(self) -> list[str]:
        """Console messages at SEVERE level since the page was opened (uncaught errors included)."""
        return [e["message"] for e in self.driver.get_log("browser") if e.get("level") == "SEVERE"]

    def network_requests(self) -> list[str]:
        """Every URL the page asked for that is not the file itself or inline data."""
        urls = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                url = message["params"]["request"]["url"]
                if not url.startswith(("file://", "data:", "blob:", "about:")):
                    urls.append(url)
        return urls

    def screenshot(self, name: str) -> Path:
        """Save a PNG under ``test-artifacts/`` (kept after the run for people to look at)."""
        ARTIFACTS.mkdir(exist_ok=True)
        target = ARTIFACTS / f"{name}.png"
        self.driver.save_screenshot(str(target))
        return target


def open_page(driver, path: Path) -> Page:
    """Open ``path`` (file://) with the logs of any earlier page drained."""
    driver.get_log("browser")
    driver.get_log("performance")
    driver.get(Path(path).resolve().as_uri())
    return Page(driver, Path(path))
