"""catch_up: one run per schedule interval that went by without a run, on real runs."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import Project
from gitsync_test import clone, git, remote, remote_config  # noqa: F401  (remote: a fixture)

from gitcron import catchup
from gitcron import config as cfg
from gitcron.codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE

WINDOW = """
import os, pathlib
with open("windows.txt", "a") as out:
    out.write(os.environ["PIPELINE_WINDOW_START"] + " " + os.environ["PIPELINE_WINDOW_END"] + "\\n")
"""


# An hourly schedule whose minute is half an hour from now: no tick falls while a
# test runs, whenever it runs.
NOW = datetime.now(timezone.utc)
MINUTE = (NOW.minute + 30) % 60
HOURLY = f"{MINUTE} * * * *"
LATEST_TICK = (NOW.replace(minute=MINUTE, second=0, microsecond=0)
               - timedelta(hours=0 if NOW.minute >= MINUTE else 1))


def hours_ago(hours: float) -> datetime:
    """The tick `hours` hourly ticks before the latest one."""
    return LATEST_TICK - timedelta(hours=hours)


def windows_seen(project: Project) -> list[tuple[str, str]]:
    return [tuple(line.split()) for line in
            (project.root / "windows.txt").read_text().splitlines()]  # type: ignore[misc]


def test_all_runs_each_missed_interval_oldest_first_with_its_own_window(project: Project
                                                                         ) -> None:
    project.module("1.w.py", WINDOW)
    last = hours_ago(3)  # 3 ticks since: 2 missed intervals, and the present one
    project.config(schedule=HOURLY, catch_up="all",
                   last_run_date=last.isoformat())
    listed = project.run("--list")
    assert "catch_up all: 2 missed schedule intervals since " in listed.stdout
    result = project.run()
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    seen = windows_seen(project)
    assert len(seen) == 3
    assert seen[0][0] == last.isoformat(timespec="seconds")
    for (_, end), (start, _) in zip(seen, seen[1:], strict=False):
        assert end == start  # no gap, no overlap
    assert [datetime.fromisoformat(s) for s, _ in seen] == [hours_ago(n) for n in (3, 2, 1)]
    records = sorted(project.records(), key=lambda r: r["run_id"])
    assert len(records) == 3 and all(not r["backfill"] for r in records)
    assert [r["window"]["end"] for r in records] == [end for _, end in seen]
    assert project.read_config()["last_run_date"] == seen[-1][1]
    assert "catch-up: run 2 of 3" in result.stdout


def test_latest_runs_only_the_newest_interval(project: Project) -> None:
    project.module("1.w.py", WINDOW)
    project.config(schedule=HOURLY, catch_up="latest",
                   last_run_date=hours_ago(5).isoformat())
    assert project.run().returncode == EXIT_OK
    ((start, _),) = windows_seen(project)
    assert datetime.fromisoformat(start) == hours_ago(1)


def test_at_most_catch_up_max_the_rest_named_in_one_warning(project: Project) -> None:
    project.module("1.w.py", WINDOW)
    project.config(schedule=HOURLY, catch_up="all", catch_up_max=2,
                   last_run_date=hours_ago(5).isoformat())
    result = project.run()
    assert result.returncode == EXIT_OK
    assert len(windows_seen(project)) == 2
    warnings = [line for line in result.stdout.splitlines()
                if "WARNING" in line and "catch_up_max" in line]
    assert len(warnings) == 1
    assert "4 missed intervals, more than catch_up_max: 3 not run, from " in warnings[0]
    assert "(backfill them with --since " in warnings[0]


def test_a_failed_catch_up_run_stops_the_rest_and_the_next_run_resumes_there(
        project: Project) -> None:
    project.module("1.w.py", WINDOW + "import sys\nsys.exit(3 if len(open('windows.txt')"
                   ".readlines()) == 2 and not os.path.exists('fixed') else 0)\n")
    last = hours_ago(3)
    project.config(schedule=HOURLY, catch_up="all", last_run_date=last.isoformat())
    assert project.run().returncode == EXIT_FAILED
    first = windows_seen(project)
    assert len(first) == 2  # stopped at the failed one
    (project.root / "fixed").write_text("")
    assert project.run().returncode == EXIT_OK
    second = windows_seen(project)[2:]
    assert second[0] == first[1]  # the failed interval again, then the rest
    assert len(second) == 2


def test_nothing_missed_is_an_ordinary_run(project: Project) -> None:
    project.module("1.w.py", WINDOW)
    project.config(schedule=HOURLY, catch_up="all",
                   last_run_date=hours_ago(0).isoformat())
    assert project.run().returncode == EXIT_OK
    assert len(windows_seen(project)) == 1
    assert "no missed schedule interval" in project.run("--list").stdout


@pytest.mark.parametrize(("keys", "problem"), [
    ({"catch_up": "all"}, "catch_up: needs `schedule`"),
    ({"schedule": HOURLY, "catch_up": "some"}, 'catch_up: must be "none", "latest" or "all"'),
    ({"schedule": HOURLY, "catch_up_max": 0}, "catch_up_max: must be a whole number from 1"),
])
def test_bad_catch_up_settings_are_one_line_and_exit_2(project: Project, keys: dict,
                                                       problem: str) -> None:
    project.module("1.w.py", WINDOW)
    project.config(**keys)
    result = project.run()
    assert result.returncode == EXIT_USAGE and problem in result.stderr
    assert not project.log_dir.exists()


def test_the_last_whole_run_comes_from_the_records(project: Project) -> None:
    project.module("1.w.py", WINDOW)
    project.config(schedule=HOURLY)
    project.log_dir.mkdir(parents=True)
    end = hours_ago(2).isoformat()
    for run_id, status, window_end in (("20260101_00h00", "success", end),
                                       ("20260101_01h00", "failed", hours_ago(0).isoformat())):
        (project.log_dir / f"workflow_{run_id}.json").write_text(json.dumps(
            {"run_id": run_id, "status": status, "modules": [], "selection": None,
             "window": {"start": None, "end": window_end}}))
    config = cfg.load(str(project.config_path))
    assert catchup.last_whole_end(config.log_dir, None) == datetime.fromisoformat(end)


def test_each_catch_up_run_is_its_own_pushed_commit(remote: Path) -> None:  # noqa: F811
    project = clone(remote, "work clone")
    project.module("1.w.py", WINDOW)
    config = project.read_config()
    project.config(dict(config, schedule=HOURLY, catch_up="all",
                        last_run_date=hours_ago(2).isoformat()))
    git(project.root, "commit", "-qam", "catch up")
    git(project.root, "push", "-q")
    before = int(git(remote, "rev-list", "--count", "main"))
    assert project.run().returncode == EXIT_OK
    assert int(git(remote, "rev-list", "--count", "main")) == before + 2
    subjects = git(remote, "log", "-2", "--format=%s", "main").splitlines()
    assert all(subject.startswith("pipeline: success run ") for subject in subjects)
    assert remote_config(remote)["last_run_date"] == windows_seen(project)[-1][1]
