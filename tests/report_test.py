"""`report --html DIR`: the history page, from the records of real runs and of written ones."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import OK, ORCHESTRATOR, Project
from history_test import record, write

from gitcron import report


def run_report(project: Project, *args: str, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ORCHESTRATOR), "report", "--config", str(project.config_path),
         *args], cwd=project.root, capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL, env=dict(os.environ, **(env or {})))


def page_of(site: Path) -> str:
    return (site / "index.html").read_text(encoding="utf-8")


def synthetic(log_dir: Path, count: int, start_day: int = 1) -> list[str]:
    """`count` records a day apart in November 2026 (hour 05), every status and kind."""
    ids = []
    for i in range(count):
        run_id = f"202611{start_day + i % 28:02d}_{5 + i // 28:02d}h00"
        status = ("failed" if i % 7 == 3 else "partial" if i % 11 == 5
                  else "interrupted" if i == 9 else "success")
        load = {"name": "2.load", "status": "failed" if status != "success" else "success",
                "exit_code": 1 if status != "success" else 0, "attempts": 2 if i % 2 else 1,
                "duration_seconds": 30.0 + (i * 7) % 40,
                "error": f"load failed at row {i}\nsecond line" if status != "success" else None}
        if status == "partial":
            load["status"] = "recovered"
        modules = [{"name": "1.fetch", "status": "skipped" if i % 5 == 0 else "success",
                    "exit_code": 10 if i % 5 == 0 else 0, "duration_seconds": 2.0 + i % 3},
                   load]
        day = f"2026-11-{start_day + i % 28:02d}"
        write(log_dir, run_id, record(
            run_id, status, modules, backfill=i % 13 == 12,
            window={"start": f"{day}T04:00:00+00:00", "end": f"{day}T05:00:00+00:00"}))
        ids.append(run_id)
    return ids


@pytest.fixture
def real_runs(project: Project) -> Project:
    """Three real runs: a success, a failure with a stderr line, a one-day backfill."""
    project.module("1.fetch.py", OK)
    project.module("2.load.py", "import os, sys\n"
                                "if os.environ.get('BREAK'):\n"
                                "    print('Traceback (most recent call last):', file=sys.stderr)\n"
                                "    print('ValueError: <b>bad</b> & worse', file=sys.stderr)\n"
                                "    sys.exit(4)\n")
    project.config()
    assert project.run("--no-push").returncode == 0
    assert project.run("--no-push", env={"BREAK": "1"}).returncode == 1
    assert project.run("--no-push", "--since", "2026-11-01", "--until", "2026-11-02"
                       ).returncode == 0
    return project


def test_real_runs_make_a_page_with_status_badge_runs_failures_and_charts(
        real_runs: Project, tmp_path: Path) -> None:
    site = tmp_path / "site"
    done = run_report(real_runs, "--html", str(site))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"report: {site / 'index.html'}: 3 runs"
    page = page_of(site)
    records = real_runs.records()
    for rec in records:
        assert f">{rec['run_id']}</a>" in page
    # The newest whole run (not the backfill) is the current status: the failure.
    assert 'aria-label="pipeline: failing"' in page
    assert "ValueError: &lt;b&gt;bad&lt;/b&gt; &amp; worse" in page  # its last stderr line
    assert "Traceback" not in page
    assert ">1.fetch</h3>" in page and ">2.load</h3>" in page
    assert '<span class="tag">backfill</span>' in page
    assert "<script" not in page and "http://" not in page.replace('http://www.w3.org', '')


def test_the_record_says_why_a_module_failed_in_one_line(real_runs: Project) -> None:
    failed = next(r for r in real_runs.records() if r["status"] == "failed")
    load = next(m for m in failed["modules"] if m["name"] == "2.load")
    assert load["error"] == "ValueError: <b>bad</b> & worse"
    assert all(m["error"] is None for r in real_runs.records() for m in r["modules"]
               if m["status"] not in ("failed", "recovered"))


def test_a_failure_without_stderr_says_how_it_ended(project: Project) -> None:
    project.module("1.quiet.py", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    project.config()
    assert project.run("--no-push").returncode == 1
    assert project.record()["modules"][0]["error"] == "killed by SIGKILL"


def test_each_run_links_to_its_log_relative_to_the_page(real_runs: Project, tmp_path: Path
                                                        ) -> None:
    site = tmp_path / "pages" / "site"
    assert run_report(real_runs, "--html", str(site)).returncode == 0
    links = set(re.findall(r'href="([^"]+)"', page_of(site)))
    assert links, "no link to any log"
    for link in links:
        target = (site / html.unescape(link).replace("%20", " ")).resolve()
        assert target.is_file() and target.suffix == ".log", link


def test_log_url_makes_links_into_the_repository(real_runs: Project, tmp_path: Path) -> None:
    prefix = "https://github.com/owner/repo/blob/main/"
    assert run_report(real_runs, "--html", str(tmp_path), "--log-url", prefix).returncode == 0
    links = set(re.findall(r'href="([^"]+)"', page_of(tmp_path)))
    assert links == {f"{prefix}data%20and%20logs/workflow_{r['run_id']}.log"
                     for r in real_runs.records()}


def test_the_newest_n_runs_are_shown_default_200(project: Project, tmp_path: Path) -> None:
    project.config()
    ids = synthetic(project.log_dir, 28 * 8)  # 224 records
    newest = sorted(ids)[::-1]
    assert run_report(project, "--html", str(tmp_path / "a")).returncode == 0
    page = page_of(tmp_path / "a")
    assert all(f">{run_id}</a>" in page for run_id in newest[:200])
    assert not any(run_id in page for run_id in newest[200:])
    assert run_report(project, "--html", str(tmp_path / "b"), "-n", "5").returncode == 0
    page = page_of(tmp_path / "b")
    assert [i for i in ids if i in page] == sorted(newest[:5])
    assert "the newest 5 runs" in page


def test_durations_failures_windows_and_backfills_are_drawn(project: Project, tmp_path: Path
                                                           ) -> None:
    project.config()
    synthetic(project.log_dir, 30)
    assert run_report(project, "--html", str(tmp_path)).returncode == 0
    page = page_of(tmp_path)
    charts = re.findall(r'<div class="chart"><h3>([^<]+)</h3>.*?<polyline points="([^"]+)"',
                        page)
    assert [name for name, _ in charts] == ["1.fetch", "2.load"]
    assert all(len(points.split()) == 30 for _, points in charts)
    # Failures: module, exit code, the first line of the error only.
    assert "load failed at row 3</td>" in page and "second line" not in page
    assert page.count('<span class="status recovered">recovered</span>') == 3  # runs 5, 16, 27
    # Windows: one per run; the backfills (runs 12 and 25) on the lower lane.
    section = page.split("<h2>Time windows</h2>")[1].split("</section>")[0]
    lanes = re.findall(r'<rect class="\w+" x="[^"]+" y="(\d+)"', section)
    assert len(lanes) == 30 and lanes.count("28") == 2
    assert page.count('class="failed rehearsal"') + page.count('class="success rehearsal"') == 2


HOSTILE = "<script>alert(1)</script>\x1b[31m\"'&"


def test_record_text_is_escaped_and_masked(project: Project, tmp_path: Path) -> None:
    project.config(mask_env=["WAREHOUSE_DSN"])
    secret = "postgres://u:hunter22@db"
    modules = [{"name": HOSTILE, "status": "failed", "exit_code": 1, "duration_seconds": 1.0,
                "error": f"cannot reach {secret} {HOSTILE}"}]
    write(project.log_dir, "20261101_05h00", record(
        "20261101_05h00", "failed", modules, trigger=HOSTILE,
        log_file=f"javascript:alert(1)//{secret}", selection={"resume_of": HOSTILE}))
    done = run_report(project, "--html", str(tmp_path), env={"WAREHOUSE_DSN": secret})
    assert done.returncode == 0, done.stderr
    page = page_of(tmp_path)
    assert "<script" not in page and "\x1b" not in page
    assert secret not in page and "hunter22" not in page
    assert "cannot reach ***" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;\\x1b[31m&quot;&#x27;&amp;" in page
    hrefs = re.findall(r'href="([^"]*)"', page)
    assert hrefs and all(not h.startswith("javascript:") and h.endswith("/%2A%2A%2A")
                         for h in hrefs)


def test_old_and_hand_edited_records_still_make_a_page(project: Project, tmp_path: Path) -> None:
    project.config()
    write(project.log_dir, "20261101_05h00", {"modules": []})
    write(project.log_dir, "20261102_05h00", {"modules": ["x", 3, {"name": None}],
                                              "status": 7, "duration_seconds": "long",
                                              "window": [1], "started": "yesterday"})
    write(project.log_dir, "20261103_05h00", "not json")
    done = run_report(project, "--html", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "skipped 1 unreadable or foreign record" in done.stderr
    page = page_of(tmp_path)
    assert ">20261101_05h00<" in page and ">20261102_05h00<" in page  # no log: no link


def test_no_records_yet_is_a_page_that_says_so(project: Project, tmp_path: Path) -> None:
    project.config()
    assert run_report(project, "--html", str(tmp_path)).returncode == 0
    page = page_of(tmp_path)
    assert 'aria-label="pipeline: no runs"' in page and "no whole run yet" in page


def test_the_page_is_replaced_whole(project: Project, tmp_path: Path) -> None:
    project.config()
    synthetic(project.log_dir, 3)
    (tmp_path / "index.html").write_text("old")
    (tmp_path / "other.txt").write_text("kept")
    assert run_report(project, "--html", str(tmp_path)).returncode == 0
    assert page_of(tmp_path).startswith("<!DOCTYPE html>")
    assert (tmp_path / "other.txt").read_text() == "kept"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(("args", "message"), [
    ([], "the following arguments are required: --html"),
    (["--html", "{file}"], "not a folder"),
    (["--html", "{tmp}", "-n", "0"], "must be a whole number"),
    (["--html", "{file}/below"], "cannot make the folder"),
])
def test_bad_arguments_are_one_line_and_exit_2(project: Project, tmp_path: Path,
                                               args: list[str], message: str) -> None:
    project.config()
    (tmp_path / "a file").write_text("")
    args = [a.format(file=tmp_path / "a file", tmp=tmp_path) for a in args]
    done = run_report(project, *args)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) <= 2
    assert "Traceback" not in done.stderr


def test_a_broken_config_is_one_line(project: Project, tmp_path: Path) -> None:
    project.config_path.write_text("{")
    done = run_report(project, "--html", str(tmp_path))
    assert done.returncode == 2 and "config.json" in done.stderr
    assert not (tmp_path / "index.html").exists()


def test_in_process_main_dispatches_report(project: Project, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from gitcron.cli import main

    project.config()
    synthetic(project.log_dir, 2)
    assert main(["report", "--config", str(project.config_path), "--html", str(tmp_path)]) == 0
    assert "2 runs" in capsys.readouterr().out


def test_badge_words_follow_the_newest_whole_run() -> None:
    text = report.Text(lambda s: s)
    def page(*statuses: str, backfill_first: bool = False) -> str:
        runs = [report.read_run(Path(f"workflow_20261101_0{i}h00.json"),
                                record(f"20261101_0{i}h00", s, [],
                                       backfill=backfill_first and i == 0),
                                None, text, lambda _: None)
                for i, s in enumerate(statuses)]
        from datetime import datetime, timezone
        return report.render(report.Page("p", runs, datetime.now(timezone.utc), 200))
    assert 'aria-label="pipeline: passing"' in page("success", "failed")
    assert 'aria-label="pipeline: partial"' in page("partial")
    assert 'aria-label="pipeline: failing"' in page("interrupted")
    assert 'aria-label="pipeline: failing"' in page("success", "failed", backfill_first=True)


def test_page_is_valid_enough_for_a_strict_parser(real_runs: Project, tmp_path: Path) -> None:
    """Every tag opened is closed, in order (the browser test checks how it looks)."""
    from html.parser import HTMLParser

    assert run_report(real_runs, "--html", str(tmp_path)).returncode == 0
    void = {"meta", "br", "rect", "line", "circle", "polyline"}
    stack: list[str] = []

    class Checker(HTMLParser):
        def handle_starttag(self, tag: str, attrs: Any) -> None:
            if tag not in void:
                stack.append(tag)

        def handle_startendtag(self, tag: str, attrs: Any) -> None:
            pass

        def handle_endtag(self, tag: str) -> None:
            if tag in void:
                return
            assert stack and stack[-1] == tag, (tag, stack[-5:])
            stack.pop()

    Checker().feed(page_of(tmp_path))
    assert stack == []


def test_the_current_status_badge_and_rate_count_whole_runs_as_status_does(
        project: Project, tmp_path: Path) -> None:
    # A narrowed run that succeeds after a partial whole run leaves the pipeline
    # degraded: the page says partial, as `status` and badge.json do.
    project.module("1.fetch.py", OK)
    project.module("2.load.py", "import sys\nsys.exit(3)\n")
    project.config(modules=["modules/1.fetch.py",
                            {"path": "modules/2.load.py", "critical": False}])
    assert project.run("--no-push").returncode == 0
    assert project.run("--no-push", "--only", "fetch").returncode == 0
    site = tmp_path / "site"
    assert run_report(project, "--html", str(site)).returncode == 0
    facts = page_of(site).split("<dl", 1)[1].split("</dl>", 1)[0]
    assert re.search(r"current status</dt><dd>[^/]*partial", facts), facts
    assert "0% <span class=\"muted\">(0 of 1)</span>" in facts
    assert "not counted</dt><dd>1 " in facts
    assert 'aria-label="pipeline: partial"' in page_of(site).split("<dl", 1)[0]
