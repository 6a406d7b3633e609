"""The history page in a real browser: headless Chromium, at 1280 and at 390 pixels.

Skipped, with the reason, where no Chromium is installed; `.ci/run` installs
Debian's `chromium` and sets GITCRON_BROWSER_TESTS=required, so in CI a missing
browser is a failure, not a skip. The screenshots are left in the test's tmp
folder (`pytest --basetemp=DIR` keeps them somewhere known).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import Chromium, find_chromium
from conftest import Project
from history_test import record, write
from report_test import real_runs, run_report, synthetic  # noqa: F401 (a fixture)

WIDTHS = ((1280, 800, False), (390, 844, True))  # a laptop window; an iPhone 12 to 15
MEASURE = """JSON.stringify({
  page: [document.documentElement.scrollWidth, document.documentElement.clientWidth],
  clipped: Array.from(document.querySelectorAll('body *'))
    .filter(e => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'visible')
    .map(e => e.className || e.tagName),
  beyond: Array.from(document.querySelectorAll('body *'))
    .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
    .map(e => e.tagName + '.' + e.className).slice(0, 5),
  text: document.body.innerText,
  cells: document.querySelectorAll('.timeline a').length,
  charts: document.querySelectorAll('.chart svg polyline').length,
})"""


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Chromium]:
    executable = find_chromium()
    if executable is None:
        if os.environ.get("GITCRON_BROWSER_TESTS") == "required":
            pytest.fail("GITCRON_BROWSER_TESTS=required but no chromium on PATH")
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium); .ci/run installs it")
    browser = Chromium(executable, tmp_path / "profile")
    try:
        browser.open_page()
        yield browser
    finally:
        browser.close()


def test_the_page_renders_every_run_without_errors_or_overflow(
        real_runs: Project, tmp_path: Path, chromium: Chromium) -> None:  # noqa: F811
    synthetic(real_runs.log_dir, 60)
    write(real_runs.log_dir, "20261031_23h59", record(
        "20261031_23h59", "failed",
        [{"name": "3.a_module_with_a_rather_long_name_that_must_wrap_somewhere",
          "status": "failed", "exit_code": -9, "duration_seconds": 1.0,
          "error": "<script>alert(1)</script>" + "x" * 300}],
        trigger="<img src=x onerror=alert(1)>"))
    site = tmp_path / "site"
    done = run_report(real_runs, "--html", str(site))
    assert done.returncode == 0, done.stderr
    ids = [r["run_id"] for r in real_runs.records()]
    assert len(ids) == 64
    for width, height, mobile in WIDTHS:
        chromium.load((site / "index.html").as_uri(), width, height, mobile)
        chromium.screenshot(tmp_path / f"report_{width}.png")
        seen = json.loads(chromium.evaluate(MEASURE))
        assert seen["page"][0] <= seen["page"][1], f"the page overflows at {width} px"
        assert seen["beyond"] == [], f"past the right edge at {width} px"
        assert seen["clipped"] == [], f"a table needs scrolling at {width} px"
        assert [i for i in ids if i not in seen["text"]] == [], f"runs missing at {width} px"
        assert seen["cells"] == 64 and seen["charts"] == 3
    assert chromium.complaints() == []
    assert set(chromium.requests()) == {(site / "index.html").as_uri()}, "a request at view time"
    assert not any(e.get("method") == "Page.javascriptDialogOpening" for e in chromium.events)
