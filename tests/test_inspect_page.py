"""The inspection page in headless Chromium (tests/pages.py): offline, no errors, unit pickers, hover, clicks.

The page is of a run, a text and features whose names carry markup, quotes, entities and template slots
(tests/pages.py, HOSTILE_TEXT and HOSTILE_NAME), so every test also sees them stay text.
"""

from __future__ import annotations

import re

import pytest
from pages import HOSTILE_NAME, HOSTILE_TEXT, assert_no_script_ran, hostile_run, open_page

import rnnlm
from rnnlm.inspection import features
from rnnlm.core.fileio import PAGE, PAGE_MARK

# Feature names ("=" would end one: NAME=REGEX) and patterns: the first is found in a unit (the list of found
# units), the second matches too little of the text's first half (a note).
FEATURES = {"</script><script>window.__pwned++</script>": r"\n", "<b>&amp; \u2028\u2029 \"q\" 'a' {{UI}}</b>": "[<>]"}


@pytest.fixture(scope="module")
def page_file(tmp_path_factory):
    """One page of a tiny run (conftest's shape) reading its own corpus (features, n-gram track and all)."""
    run = hostile_run(tmp_path_factory.mktemp("inspect"))
    with pytest.MonkeyPatch.context() as patch:
        # The name rule (letters, digits, _ - space) keeps markup out of names; the page must not depend on it.
        patch.setattr(features, "_NAME", re.compile(r".+"))
        insp = rnnlm.inspect(run, run.parent / f"{HOSTILE_NAME}.txt", max_k=32, threshold=0.3,
                             features=[f"{name}={pattern}" for name, pattern in FEATURES.items()])
    return insp.write_page(run.parent / "page.html", [(1, 2)]), insp


COLOURS = "return [...document.querySelectorAll('#text .ch')].slice(0, 400).map(s => s.style.backgroundColor)"


def test_page_opens_offline_with_no_errors_and_every_character(browser, page_file):
    path, insp = page_file
    page = open_page(browser, path)
    title = f"rnnlm inspect — {HOSTILE_NAME}/best.safetensors"
    assert_no_script_ran(page, title)
    assert page.js("return document.getElementById('title').textContent") == f"rnnlm inspect — {insp.checkpoint}"
    shown = page.js("return [...document.querySelectorAll('#text .ch')].map(s => s.textContent).join('')")
    assert HOSTILE_TEXT in insp.text and shown == insp.text.replace("\n", "↵")
    data = page.js("return JSON.parse(document.getElementById('rnnlm-data').textContent)")
    assert data["vocab"] == insp.vocabulary and data["meta"]["source"] == insp.source
    assert f"characters of {insp.source} from" in page.js("return document.getElementById('summary').textContent")
    listed = page.js("return [...document.querySelectorAll('#found li, #found-more li, #notes li')]"
                     ".map(li => li.textContent).join('\\n')")
    assert all(name in listed for name in FEATURES)
    assert page.js("return document.querySelectorAll('#text .ch').length") == len(insp.text)
    assert page.js("return document.querySelectorAll('#text .nl').length") == insp.text.count("\n")
    assert page.js("return document.querySelectorAll('#reach-svg polyline').length") == 2  # one line per layer
    assert page.js("return document.querySelectorAll('#saturation circle').length") == 2 * 3 * 16  # layers × gates × units
    assert page.screenshot("inspect-page").stat().st_size > 20_000


def test_the_page_carries_rnnlm_s_mark_in_its_head(page_file):
    """The mark lets a later write recognise a page rnnlm wrote (docs/developer/rules.md, "Files a user names")."""
    text = page_file[0].read_text(encoding="utf-8")
    assert PAGE_MARK in text[: text.index("</head>")] and PAGE.is_ours(page_file[0])


def test_choosing_another_unit_or_signal_changes_the_colours(browser, page_file):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    page = open_page(browser, page_file[0])
    before = page.js(COLOURS)
    assert len(set(before)) > 2  # the unit's values vary along the text
    page.js("const s = document.getElementById('unit'); s.value = String((+s.value + 1) % 16);"
            "s.dispatchEvent(new Event('change'))")
    picked = page.js(COLOURS)
    assert picked != before
    unit = int(page.js("return document.getElementById('unit').value"))
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_RIGHT)  # arrow keys step through units
    assert int(page.js("return document.getElementById('unit').value")) == (unit + 1) % 16
    assert page.js(COLOURS) != picked
    layer = int(page.js("return document.getElementById('layer').value"))
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_DOWN if layer == 0 else Keys.ARROW_UP)
    assert int(page.js("return document.getElementById('layer').value")) == 1 - layer
    page.js("const l = document.getElementById('layer'); l.value = '1'; l.dispatchEvent(new Event('change'));"
            "const u = document.getElementById('unit'); u.value = '2'; u.dispatchEvent(new Event('change'))")
    assert page.js("return [...document.getElementById('signal').options].map(o => o.value)") == list("hcifgo")
    h = page.js(COLOURS)
    page.js("const s = document.getElementById('signal'); s.value = 'f'; s.dispatchEvent(new Event('change'))")
    assert page.js(COLOURS) != h and "L2 u2 · f" in page.js("return document.getElementById('current').textContent")
    assert page.console_errors() == []


def test_hovering_a_character_shows_the_top_5_next_characters(browser, page_file):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    path, insp = page_file
    page = open_page(browser, path)
    assert page.js("return document.getElementById('tip').hidden") is True
    span = browser.find_elements(By.CSS_SELECTOR, "#text .ch")[30]
    ActionChains(browser).move_to_element(span).perform()
    assert page.js("return document.getElementById('tip').hidden") is False
    items = page.js("return [...document.querySelectorAll('#tip .top5 li')].map(li => li.textContent)")
    assert len(items) == 5
    shown = [float(item.rsplit(" ", 1)[1].rstrip("%")) for item in items]
    assert shown == sorted(shown, reverse=True)
    assert shown[0] == pytest.approx(100 * insp.top_probs[30, 0], abs=0.3)
    assert "bits" in page.js("return document.getElementById('tip').textContent")
    page.screenshot("inspect-hover")


def test_the_found_list_and_the_saturation_points_select_their_unit(browser, page_file):
    from selenium.webdriver.common.by import By

    path, insp = page_file
    page = open_page(browser, path)
    entries = browser.find_elements(By.CSS_SELECTOR, "#found li[data-unit]")
    assert entries, "the tiny run should have some unit above 0.3 held out"
    entry = entries[-1]
    layer, unit = int(entry.get_attribute("data-layer")), int(entry.get_attribute("data-unit"))
    entry.click()
    assert page.js("return document.getElementById('current').textContent").startswith(f"L{layer + 1} u{unit} ")
    point = browser.find_elements(By.CSS_SELECTOR, "#saturation circle[data-gate='o']")[5]
    browser.execute_script("arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", point)
    current = page.js("return document.getElementById('current').textContent")
    assert current.startswith(f"L{int(point.get_attribute('data-layer')) + 1} u5 ")
    track = page.js("return [...document.querySelectorAll('#text .ch')].slice(0, 200).map(s => s.style.borderBottomColor)")
    page.js("const t = document.getElementById('track'); t.value = 'diff'; t.dispatchEvent(new Event('change'))")
    assert page.js("return [...document.querySelectorAll('#text .ch')].slice(0, 200).map(s => s.style.borderBottomColor)") != track
    assert page.console_errors() == []
