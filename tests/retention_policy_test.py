"""modules/0.retention_policy.py around its boundaries, with real files and symlinks."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import RUN_ID, Project, run_stage

NAME = "0.retention_policy.py"
NOW = datetime(2026, 11, 23, 6, 0, tzinfo=timezone.utc)  # the run's start (conftest.STARTED)


def prune(project: Project, **options: Any) -> subprocess.CompletedProcess[str]:
    return run_stage(project, NAME, **options)


def policy(project: Project, **retention: Any) -> None:
    project.config(retention=retention)


def add_run(project: Project, run_id: str) -> list[Path]:
    project.log_dir.mkdir(parents=True, exist_ok=True)
    files = [project.log_dir / f"workflow_{run_id}{suffix}" for suffix in (".log", ".json")]
    for path in files:
        path.write_text(run_id)
    return files


def run_ids(project: Project) -> list[str]:
    return sorted({p.name.split(".")[0].removeprefix("workflow_")
                   for p in project.log_dir.glob("workflow_*")})


def data_file(project: Project, relative: str, age: timedelta) -> Path:
    path = project.log_dir / "data" / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(relative)
    stamp = (NOW - age).timestamp()
    os.utime(path, (stamp, stamp))
    return path


def run_id_at(moment: datetime) -> str:
    return moment.strftime("%Y%m%d_%Hh%M")


@pytest.fixture
def this_run(project: Project) -> list[Path]:
    """The orchestrator has written this run's log before any module runs."""
    return add_run(project, RUN_ID)


# ---------------------------------------------------------------- runs

def test_a_run_exactly_days_old_is_kept_a_minute_more_is_not(
        project: Project, this_run: list[Path]) -> None:
    policy(project, days=30, keep_last=0)
    exactly = run_id_at(NOW - timedelta(days=30))
    older = run_id_at(NOW - timedelta(days=30, minutes=1))
    add_run(project, exactly)
    add_run(project, older)

    result = prune(project, started="2026-11-23T06:00:59.999+00:00")
    assert result.returncode == 0, result.stderr
    assert run_ids(project) == sorted([exactly, RUN_ID])
    assert f"deleting workflow_{older}.json (run of 2026-10-24 05:59)" in result.stdout
    assert "deleted 2 files (28 bytes): 1 old run, 0 data files" in result.stdout


def test_the_newest_keep_last_runs_are_kept_however_old(
        project: Project, this_run: list[Path]) -> None:
    policy(project, days=30, keep_last=3)
    ancient = [run_id_at(NOW - timedelta(days=400 + n)) for n in range(5)]
    for run_id in ancient:
        add_run(project, run_id)

    result = prune(project)
    assert result.returncode == 0, result.stderr
    # this run and the two newest old ones make three
    assert run_ids(project) == sorted([RUN_ID, ancient[0], ancient[1]])


def test_keep_last_larger_than_the_runs_deletes_nothing(
        project: Project, this_run: list[Path]) -> None:
    policy(project, days=1, keep_last=50)
    for n in range(5):
        add_run(project, run_id_at(NOW - timedelta(days=100 + n)))
    result = prune(project)
    assert result.returncode == 10, result.stderr
    assert "nothing to delete" in result.stdout
    assert len(run_ids(project)) == 6


def test_this_run_is_never_deleted(project: Project) -> None:
    policy(project, days=0, keep_last=0)
    this = "20200101_00h00"  # a clock far behind: this run looks old
    add_run(project, this)
    result = prune(project, run_id=this)
    assert result.returncode == 10
    assert run_ids(project) == [this]


def test_renamed_runs_and_lone_records_count_as_runs(
        project: Project, this_run: list[Path]) -> None:
    policy(project, days=30, keep_last=1)
    old = run_id_at(NOW - timedelta(days=60))
    add_run(project, old)
    add_run(project, old + "_2")
    (project.log_dir / f"workflow_{old}_3.json").write_text("{}")
    result = prune(project)
    assert result.returncode == 0, result.stderr
    assert run_ids(project) == [RUN_ID]


def test_run_ids_are_read_in_the_configured_timezone(
        project: Project, this_run: list[Path]) -> None:
    project.config(timezone="Asia/Tokyo", retention={"days": 30, "keep_last": 0})
    tokyo = NOW.astimezone(timezone(timedelta(hours=9)))  # 15:00 there
    exactly = run_id_at(tokyo - timedelta(days=30))
    older = run_id_at(tokyo - timedelta(days=30, minutes=1))
    add_run(project, exactly)
    add_run(project, older)
    result = prune(project)
    assert result.returncode == 0, result.stderr
    assert run_ids(project) == sorted([exactly, RUN_ID])


def test_other_files_in_the_log_folder_and_outside_it_are_left(
        project: Project, this_run: list[Path]) -> None:
    policy(project, days=1, keep_last=0)
    notes = project.log_dir / "notes.txt"
    notes.write_text("mine")
    outside = project.root / "workflow_20200101_00h00.log"
    outside.write_text("not in the log folder")
    for path in (notes, outside):
        os.utime(path, (0, 0))
    assert prune(project).returncode == 10
    assert notes.exists() and outside.exists()


def test_dry_run_lists_and_deletes_nothing(project: Project, this_run: list[Path]) -> None:
    policy(project, days=30, keep_last=0)
    old = run_id_at(NOW - timedelta(days=31))
    add_run(project, old)
    stale = data_file(project, "quarantine/bad.csv", timedelta(days=31))

    result = prune(project, dry_run=True)
    assert result.returncode == 0, result.stderr
    assert f"would delete workflow_{old}.log" in result.stdout
    assert "would delete data/quarantine/bad.csv (last changed 2026-10-23 06:00)" in result.stdout
    assert "would delete 3 files" in result.stdout
    assert run_ids(project) == sorted([old, RUN_ID]) and stale.exists()


# ---------------------------------------------------------------- data files

def test_old_data_below_data_is_deleted_and_its_folder_removed(
        project: Project, this_run: list[Path]) -> None:
    policy(project, days=30, keep_last=0)
    stale = data_file(project, "quarantine/w_20261001_06h00.csv", timedelta(days=30, seconds=1))
    exactly = data_file(project, "quarantine/w_20261024_06h00.csv", timedelta(days=30))
    lone = data_file(project, "2026-10-01/out.csv", timedelta(days=53))

    result = prune(project)
    assert result.returncode == 0, result.stderr
    assert not stale.exists() and exactly.exists()
    assert not lone.parent.exists()
    assert "removed the empty folder data/2026-10-01" in result.stdout
    assert (project.log_dir / "data").is_dir()


def test_the_state_directly_in_data_is_kept_unless_keep_says_otherwise(
        project: Project, this_run: list[Path]) -> None:
    manifest = data_file(project, "manifest.json", timedelta(days=90))
    policy(project, days=30, keep_last=0)
    assert prune(project).returncode == 10
    assert manifest.exists()

    policy(project, days=30, keep_last=0, keep=["data/*.csv"])
    assert prune(project).returncode == 0
    assert not manifest.exists()


def test_data_newer_than_the_oldest_kept_run_is_kept(
        project: Project, this_run: list[Path]) -> None:
    policy(project, days=30, keep_last=2)
    add_run(project, run_id_at(NOW - timedelta(days=50)))  # kept: one of the newest two
    kept = data_file(project, "out/a.csv", timedelta(days=40))
    gone = data_file(project, "out/b.csv", timedelta(days=60))
    assert prune(project).returncode == 0
    assert kept.exists() and not gone.exists()


def test_symlinks_are_never_followed_nor_deleted(
        project: Project, this_run: list[Path], tmp_path: Path) -> None:
    policy(project, days=1, keep_last=0, keep=[])
    outside = tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    target = outside / "precious.csv"
    target.write_text("keep me")
    (outside / "folder" / "also.csv").write_text("keep me too")
    for path in (target, outside / "folder" / "also.csv"):
        os.utime(path, (0, 0))
    links = project.log_dir / "data" / "links"
    links.mkdir(parents=True)
    (links / "file.csv").symlink_to(target)
    (links / "folder").symlink_to(outside / "folder", target_is_directory=True)
    (project.log_dir / "workflow_20200101_00h00.log").symlink_to(target)
    for link in (links / "file.csv", links / "folder"):
        os.utime(link, (0, 0), follow_symlinks=False)

    result = prune(project)
    assert result.returncode == 10, result.stdout + result.stderr
    assert target.read_text() == "keep me"
    assert (outside / "folder" / "also.csv").read_text() == "keep me too"
    assert (links / "file.csv").is_symlink() and (links / "folder").is_symlink()
    assert (project.log_dir / "workflow_20200101_00h00.log").is_symlink()


def test_a_data_folder_that_is_a_symlink_is_not_pruned(
        project: Project, this_run: list[Path], tmp_path: Path) -> None:
    policy(project, days=1, keep_last=0, keep=[])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "old.csv").write_text("keep me")
    os.utime(elsewhere / "old.csv", (0, 0))
    (project.log_dir / "data").symlink_to(elsewhere, target_is_directory=True)
    result = prune(project)
    assert result.returncode == 10
    assert "data/ is a symlink: its files are not pruned" in result.stdout
    assert (elsewhere / "old.csv").exists()


# ---------------------------------------------------------------- settings

@pytest.mark.parametrize(("retention", "message"), [
    ({"days": "30"}, "retention.days: must be a whole number, 0 or more (got '30')"),
    ({"keep_last": -1}, "retention.keep_last: must be a whole number, 0 or more (got -1)"),
    ({"keep": "data/*"}, "retention.keep: must be a list (got 'data/*')"),
    ({"keep": [1]}, "retention.keep: must be a list of patterns"),
    ({"dayz": 3}, "retention.dayz: unknown key (known: days, keep_last, keep)"),
])
def test_bad_settings_are_one_line_and_exit_2(project: Project, this_run: list[Path],
                                              retention: dict[str, Any], message: str) -> None:
    project.config(retention=retention)
    result = prune(project)
    assert result.returncode == 2
    assert result.stderr.strip() == f"0.retention_policy: config.json: {message}"
    assert run_ids(project) == [RUN_ID]
