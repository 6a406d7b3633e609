"""`status`: the newest runs, the schedule, and health (ok, failing, late) at a given time."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import ORCHESTRATOR, Project, fail
from history_test import record, write

from gitcron import config as cfg
from gitcron import history
from gitcron.codes import FatalError

UTC = timezone.utc
PIPELINE_WORKFLOW = """\
name: pipeline
on:
  schedule:
    - cron: "{cron}"
  workflow_dispatch:
jobs:
  run:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v5
      - name: Run the pipeline
        run: |
          python orchestrator.py "${{args[@]}}"
"""
HEALTH_WORKFLOW = """\
name: health
on:
  schedule:
    - cron: "5 7 * * *"
jobs:
  check:
    runs-on: ubuntu-latest
    steps:
      - run: python orchestrator.py status
"""


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def started(run_id: str, when: str, status: str = "success", **extra: object) -> dict:
    return record(run_id, status, started=f"{when}+00:00", **extra)


def load(project: Project, schedule: str | None = None, grace: float = 60.0) -> cfg.Config:
    config = cfg.load(str(project.config_path))
    return dataclasses.replace(config, schedule=schedule, schedule_grace_minutes=grace)


def run_status(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ORCHESTRATOR), "status", "--config", str(project.config_path),
         *args], cwd=project.root, capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL)


@pytest.fixture
def logs(project: Project) -> Path:
    project.config()
    return project.log_dir


# Health for schedules of every kind: (cron, newest run's start, now, health)
CASES = [
    # every 5 minutes, grace 60: the run due at 09:00 must have started by 10:00
    ("*/5 * * * *", "2026-11-23T09:20:00", "2026-11-23T10:15:00", "ok"),
    ("*/5 * * * *", "2026-11-23T09:10:00", "2026-11-23T10:15:30", "late"),
    ("*/5 * * * *", "2026-11-23T09:15:00", "2026-11-23T10:15:00", "ok"),  # due exactly then
    # hourly at :17
    ("17 * * * *", "2026-11-23T09:18:00", "2026-11-23T10:30:00", "ok"),
    ("17 * * * *", "2026-11-23T09:18:00", "2026-11-23T11:18:00", "late"),
    ("17 * * * *", "2026-11-23T08:17:00", "2026-11-23T10:16:00", "ok"),
    ("17 * * * *", "2026-11-23T08:17:00", "2026-11-23T10:17:00", "late"),
    # daily at 06:17: a GitHub delay within the grace is fine
    ("17 6 * * *", "2026-11-23T06:49:00", "2026-11-24T07:00:00", "ok"),
    ("17 6 * * *", "2026-11-23T06:49:00", "2026-11-24T07:18:00", "late"),
    ("17 6 * * *", "2026-11-24T06:40:00", "2026-11-24T07:18:00", "ok"),
    # monthly, across the month's end and the year's
    ("0 0 1 * *", "2026-11-01T00:12:00", "2026-11-30T23:59:00", "ok"),
    ("0 0 1 * *", "2026-11-01T00:12:00", "2026-12-01T01:01:00", "late"),
    ("0 0 1 * *", "2026-12-01T00:30:00", "2027-01-01T00:59:00", "ok"),
    ("0 0 1 * *", "2026-12-01T00:30:00", "2027-01-01T01:00:00", "late"),
]


@pytest.mark.parametrize(("cron", "newest", "now", "health"), CASES)
def test_health_for_each_kind_of_schedule(project: Project, logs: Path, cron: str, newest: str,
                                          now: str, health: str) -> None:
    write(logs, "20260101_00h00", started("20260101_00h00", newest))
    report = history.status_report(load(project, cron), at(now))
    assert report["health"] == health, report
    assert len(report["reasons"]) == (health != "ok")


@pytest.mark.parametrize("status", ["failed", "interrupted"])
def test_a_failed_or_interrupted_newest_run_is_failing(project: Project, logs: Path,
                                                       status: str) -> None:
    write(logs, "20261123_09h00", started("20261123_09h00", "2026-11-23T09:00:00", status))
    report = history.status_report(load(project, "0 9 * * *"), at("2026-11-23T09:30:00"))
    assert report["health"] == "failing"
    [reason] = report["reasons"]
    assert reason.startswith(f"the newest run 20261123_09h00 {status}")


def test_failing_and_late_at_once_names_both(project: Project, logs: Path) -> None:
    write(logs, "20261123_09h00", started("20261123_09h00", "2026-11-23T09:00:00", "failed"))
    report = history.status_report(load(project, "0 9 * * *"), at("2026-11-25T12:00:00"))
    assert report["health"] == "failing"
    assert report["reasons"][1] == ("no run started since 2026-11-25 09:00 UTC, expected then "
                                    "(grace 60 min)")


def test_no_run_at_all_is_late_once_one_was_due(project: Project, logs: Path) -> None:
    assert history.status_report(load(project, "0 9 * * *"),
                                 at("2026-11-23T10:00:00"))["health"] == "late"
    assert history.status_report(load(project, "0 9 * * *", grace=120),
                                 at("2026-11-23T10:00:00"))["health"] == "late"  # yesterday's


def test_the_grace_is_the_configured_one(project: Project, logs: Path) -> None:
    write(logs, "20261123_09h00", started("20261123_09h00", "2026-11-23T08:00:00"))
    config = load(project, "0 9 * * *", grace=180)
    assert history.status_report(config, at("2026-11-23T11:59:00"))["health"] == "ok"
    assert history.status_report(config, at("2026-11-23T12:00:00"))["health"] == "late"


def test_the_report_counts_failures_up_to_the_newest_success(project: Project, logs: Path
                                                             ) -> None:
    write(logs, "20261120_09h00", started("20261120_09h00", "2026-11-20T09:00:00", "failed"))
    write(logs, "20261121_09h00", started("20261121_09h00", "2026-11-21T09:00:00", "partial"))
    write(logs, "20261122_09h00", started("20261122_09h00", "2026-11-22T09:00:00", "failed"))
    write(logs, "20261123_09h00", started("20261123_09h00", "2026-11-23T09:00:00",
                                          "interrupted"))
    write(logs, "20261123_10h00", started("20261123_10h00", "2026-11-23T10:00:00", dry_run=True))
    write(logs, "20261123_11h00", "{broken")
    report = history.status_report(load(project, "0 9 * * *"), at("2026-11-23T09:30:00"))
    assert report["failures_in_a_row"] == 2
    assert report["newest_run"]["run_id"] == "20261123_09h00"
    assert report["newest_success"]["run_id"] == "20261121_09h00"
    assert report["newest_success"]["status"] == "partial"
    assert report["schedule"] == {
        "crons": ["0 9 * * *"], "source": f"{project.config_path}: schedule",
        "words": ["At 09:00 every day"], "last_expected": "2026-11-23T09:00:00+00:00",
        "next_expected": "2026-11-24T09:00:00+00:00",
        "must_have_started_since": "2026-11-22T09:00:00+00:00", "grace_minutes": 60.0}


def test_a_record_without_a_start_is_placed_by_its_run_id(project: Project, logs: Path) -> None:
    old = record("20261123_09h05")
    del old["started"]
    write(logs, "20261123_09h05", old)
    report = history.status_report(load(project, "0 9 * * *"), at("2026-11-23T10:30:00"))
    assert report["health"] == "ok"
    assert report["newest_run"]["started"] == "2026-11-23T09:05:00+00:00"


def test_the_schedule_comes_from_the_workflow_that_runs_the_pipeline(project: Project,
                                                                     logs: Path) -> None:
    workflows = project.root / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "pipeline.yml").write_text(PIPELINE_WORKFLOW.format(cron="17 6 * * *"))
    (workflows / "health.yml").write_text(HEALTH_WORKFLOW)  # runs `status`: not the pipeline
    (workflows / "tests.yaml").write_text("on:\n  schedule:\n    - cron: '0 0 * * *'\n"
                                          "jobs:\n  t:\n    steps:\n      - run: pytest\n")
    (workflows / "broken.yml").write_text("on: [\n")
    schedule = history.find_schedule(load(project))
    assert schedule == history.Schedule(("17 6 * * *",), ".github/workflows/pipeline.yml")
    config_wins = history.find_schedule(load(project, "*/5 * * * *"))
    assert config_wins is not None and config_wins.crons == ("*/5 * * * *",)


def test_without_a_schedule_only_failures_count(project: Project, logs: Path) -> None:
    write(logs, "20201123_09h00", started("20201123_09h00", "2020-11-23T09:00:00"))
    report = history.status_report(load(project), at("2026-11-23T09:30:00"))
    assert report["health"] == "ok" and report["schedule"] is None


def test_a_bad_cron_line_names_where_it_is(project: Project, logs: Path) -> None:
    with pytest.raises(FatalError, match=r"config.json: schedule: not a cron schedule"):
        history.status_report(load(project, "61 * * * *"), at("2026-11-23T09:30:00"))


def test_status_of_real_runs_as_a_process(project: Project) -> None:
    project.module("1.a.py", fail())
    project.config()
    for _ in range(2):
        assert project.run("--no-push").returncode == 1
    result = run_status(project)
    assert result.returncode == 1, result.stderr
    lines = dict(line.split(":", 1) for line in result.stdout.splitlines())
    assert lines["health"].strip().startswith("failing; the newest run ")
    assert lines["failures in a row"].strip() == "2"
    assert lines["newest success"].strip() == "none"
    assert lines["schedule"].strip().startswith("none found")
    report = json.loads(run_status(project, "--json").stdout)
    assert report["health"] == "failing" and report["failures_in_a_row"] == 2


def test_status_ok_and_late_as_a_process(project: Project, logs: Path) -> None:
    write(logs, "20201123_09h00", started("20201123_09h00", "2020-11-23T09:00:00"))
    ok = run_status(project)
    assert ok.returncode == 0 and ok.stdout.startswith("health:            ok\n"), ok.stdout
    workflows = project.root / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "pipeline.yml").write_text(PIPELINE_WORKFLOW.format(cron="*/5 * * * *"))
    late = run_status(project)
    assert late.returncode == 1 and late.stdout.startswith("health:            late; no run ")
    assert "schedule:          */5 * * * * (Every fifth minute of every hour, UTC) from " \
           ".github/workflows/pipeline.yml" in late.stdout
    report = json.loads(run_status(project, "--json").stdout)
    assert report["health"] == "late" and report["schedule"]["crons"] == ["*/5 * * * *"]


def test_status_bad_arguments_are_one_line(project: Project, logs: Path) -> None:
    result = run_status(project, "--bogus")
    assert result.returncode == 2 and result.stderr.count("\n") == 1


# What counts: whole runs; partial is degraded; a stale branch is a warning


def git(cwd: Path, *args: str, **env: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env=dict(os.environ, **env))


def test_a_partial_newest_run_is_degraded_naming_its_modules(project: Project) -> None:
    project.module("1.a.py", fail(4))
    project.module("2.b.py", fail(5))
    project.module("undo.sh", "exit 0\n")
    project.config(modules=[{"path": "modules/1.a.py", "on_failure": "modules/undo.sh"},
                            {"path": "modules/2.b.py", "critical": False}])
    assert project.run("--no-push").returncode == 0
    assert project.record()["status"] == "partial"
    result = run_status(project)
    assert result.returncode == 1
    run_id = project.record()["run_id"]
    assert result.stdout.splitlines()[0] == (
        f"health:            degraded; the newest run {run_id} partial; failed: 2.b; "
        "recovered: 1.a")
    report = json.loads(run_status(project, "--json").stdout)
    assert report["health"] == "degraded" and report["failures_in_a_row"] == 0


def test_narrowed_dry_and_backfill_runs_neither_decide_health_nor_end_lateness(
        project: Project, logs: Path) -> None:
    write(logs, "20261123_06h00", started("20261123_06h00", "2026-11-23T06:00:00", "failed"))
    write(logs, "20261124_06h10", started("20261124_06h10", "2026-11-24T06:10:00",
                                          selection={"only": ["1.a"], "from": None, "skip": [],
                                                     "resume_of": None}))
    write(logs, "20261124_06h20", started("20261124_06h20", "2026-11-24T06:20:00", dry_run=True))
    write(logs, "20261124_06h30", started("20261124_06h30", "2026-11-24T06:30:00", backfill=True))
    report = history.status_report(load(project, "0 6 * * *"), at("2026-11-24T07:30:00"))
    assert report["health"] == "failing"
    assert report["newest_run"]["run_id"] == "20261123_06h00"
    assert report["newest_other_run"]["run_id"] == "20261124_06h30"
    assert report["newest_other_run"]["kind"] == "backfill"
    assert report["reasons"][1].startswith("no run started since 2026-11-24 06:00 UTC")
    assert report["recent"] == ("4 runs: success rate 0% (0 of 1 whole runs), median duration "
                                "12.5s; not counted: 1 narrowed (1 succeeded), 1 dry run "
                                "(1 succeeded), 1 backfill (1 succeeded)")
    lines = history.status_lines(report, history.Style(False, history.MARKS))
    assert any(line.startswith("newest backfill:   20261124_06h30") for line in lines)


def test_a_resumed_run_is_a_whole_run(project: Project, logs: Path) -> None:
    write(logs, "20261123_06h00", started("20261123_06h00", "2026-11-23T06:00:00", "failed"))
    write(logs, "20261123_07h00", started("20261123_07h00", "2026-11-23T07:00:00", selection={
        "only": [], "from": "2.load", "skip": [], "resume_of": "20261123_06h00"}))
    report = history.status_report(load(project), at("2026-11-23T08:00:00"))
    assert report["health"] == "ok" and report["newest_run"]["run_id"] == "20261123_07h00"


@pytest.mark.parametrize(("days", "warned"), [(49, False), (51, True)])
def test_a_branch_without_a_commit_for_50_days_is_warned_of(project: Project, logs: Path,
                                                            days: int, warned: bool) -> None:
    git(project.root, "init", "-q")
    git(project.root, "add", "config.json")
    when = "2026-10-01T12:00:00+00:00"
    git(project.root, "commit", "-q", "-m", "initial", GIT_COMMITTER_DATE=when,
        GIT_AUTHOR_DATE=when)
    now = at("2026-10-01T12:00:00") + timedelta(days=days)
    report = history.status_report(load(project), now)
    assert report["health"] == "ok"  # a warning, not a verdict
    if not warned:
        assert report["warnings"] == []
        return
    [warning] = report["warnings"]
    assert warning.startswith("the newest commit (")
    assert ", 2026-10-01 12:00 UTC) is 51 days old: " in warning
    assert "GitHub disables the schedule of a public repository after 60 days" in warning
    lines = history.status_lines(report, history.Style(False, history.MARKS))
    assert lines[-1].startswith("warning:") and "51 days old" in lines[-1]


def test_outside_a_repository_there_is_no_commit_to_warn_of(project: Project, logs: Path) -> None:
    assert history.status_report(load(project), at("2026-10-01T12:00:00"))["warnings"] == []


@pytest.mark.parametrize("uses", ["./", "team/gitcron@v1", "team/gitcron@0123abc"])
def test_the_schedule_comes_from_a_workflow_that_uses_the_action(project: Project, logs: Path,
                                                                 uses: str) -> None:
    workflows = project.root / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "pipeline.yml").write_text(
        "on:\n  schedule:\n    - cron: '17 6 * * *'\njobs:\n  run:\n    steps:\n"
        f"      - uses: actions/checkout@v5\n      - uses: {uses}\n")
    (workflows / "other.yml").write_text(
        "on:\n  schedule:\n    - cron: '0 0 * * *'\njobs:\n  run:\n    steps:\n"
        "      - uses: ./.github/actions/lint\n      - uses: team/gitcron-lint@v1\n")
    schedule = history.find_schedule(load(project))
    assert schedule == history.Schedule(("17 6 * * *",), ".github/workflows/pipeline.yml")
