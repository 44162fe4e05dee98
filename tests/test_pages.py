"""The browser harness itself: a page opens offline, its console and network attempts are seen."""

from __future__ import annotations

import pytest
from pages import assert_no_script_ran, open_page


def test_harness_sees_console_errors_and_blocks_the_network(browser, tmp_path):
    page_file = tmp_path / "probe.html"
    page_file.write_text(
        "<!doctype html><meta charset=utf-8><title>probe</title><p id=t>héllo 한국어</p>"
        "<script>document.getElementById('t').dataset.ok = '1';"
        "window.__pwned = 1; fetch('https://example.com/x').catch(() => {}); undefinedFunction();</script>",
        encoding="utf-8")
    page = open_page(browser, page_file)
    assert page.js("return document.getElementById('t').textContent") == "héllo 한국어"
    assert page.js("return document.getElementById('t').dataset.ok") == "1"
    assert any("undefinedFunction" in e for e in page.console_errors())
    assert page.network_requests() == ["https://example.com/x"]
    with pytest.raises(AssertionError):  # the escaping tests' check sees a script that ran
        assert_no_script_ran(page, "probe")
    assert page.screenshot("harness-probe").stat().st_size > 1000


def test_a_clean_page_has_no_errors_and_no_requests(browser, tmp_path):
    page_file = tmp_path / "clean.html"
    page_file.write_text("<!doctype html><meta charset=utf-8><title>clean</title><p>ok</p>", encoding="utf-8")
    page = open_page(browser, page_file)
    assert_no_script_ran(page, "clean")
