"""The one headless-Chromium harness for every page test (docs/developer/rules.md, "Pages").

Debian's ``chromium`` driven through ``chromium-driver`` by selenium, with
``SE_OFFLINE=true`` so selenium never looks for a driver online, and every
network scheme blocked inside the browser: a page that tries to fetch anything
is caught by :meth:`Page.network_requests`, not served.  Tests use the
``browser`` fixture (``tests/conftest.py``) and :func:`open_page`; where the
browser is missing they skip with the reason, except under
``RNNLM_REQUIRE_BROWSER=1`` (set by ``.ci/run``), where they fail.  The
escaping tests of both pages share HOSTILE_TEXT, HOSTILE_NAME,
:func:`hostile_run` and :func:`assert_no_script_ran`.
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

# Values a page must show as text (issue 22): each would run a script (setting window.__pwned), end the
# <script> element holding the page's data, turn into another character, or be read as a template slot, if a
# page put it in as markup or template.
HOSTILE_TEXT = ('</script><script>window.__pwned=1</script> <img src=x onerror="window.__pwned=1"> '
                "&amp; &lt;b&gt; \"double\" 'single' `back` \\ \u2028 \u2029 {{UI}} {{META}}\n")
# The same for file and directory names, which cannot hold "/".  Their "<!--<script>" needs none: inside a
# script element it makes the parser miss the element's end.  The text leaves it out: after a name's
# "<!--<script>" the text's "</script>" only ends that "<script>", and an unescaped page would survive the pair.
HOSTILE_NAME = "<img src=x onerror=window.__pwned=1> \"q\" 'a' {{ENGINE}} {{UI}} &amp; <!--<script>"


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


def hostile_run(root: Path) -> Path:
    """A run directory named HOSTILE_NAME inside ``root``, of a tiny LSTM trained on ``HOSTILE_NAME.txt``.

    The shape and budget of ``conftest.tiny_run`` (2 × 16 LSTM, 40 steps); its corpus adds HOSTILE_TEXT to the
    tiny text, so every character of it is in the vocabulary and an inspection may read it.
    """
    from conftest import TINY_MODEL, TINY_TEXT, TINY_TRAIN

    from rnnlm.training.run import train
    from rnnlm.core.config import ModelConfig, TrainConfig

    corpus = root / f"{HOSTILE_NAME}.txt"
    corpus.write_text(TINY_TEXT + HOSTILE_TEXT * 3, encoding="utf-8")
    config = TrainConfig(**{**TINY_TRAIN, "max_steps": 40})
    train(corpus, model=ModelConfig(cell="lstm", **{**TINY_MODEL, "num_layers": 2}), config=config,
          out=root / HOSTILE_NAME, threads=1)
    return root / HOSTILE_NAME


def assert_no_script_ran(page: Page, title: str) -> None:
    """None of HOSTILE_TEXT's or HOSTILE_NAME's scripts ran, nothing failed and the page's title is ``title``."""
    assert page.js("return typeof window.__pwned") == "undefined"
    assert page.console_errors() == [] and page.network_requests() == []
    assert page.js("return document.title") == title


def open_page(driver, path: Path) -> Page:
    """Open ``path`` (file://) with the logs of any earlier page drained."""
    driver.get_log("browser")
    driver.get_log("performance")
    driver.get(Path(path).resolve().as_uri())
    return Page(driver, Path(path))
