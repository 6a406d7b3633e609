"""modules/0.retention_policy.py around its boundaries, with real files and symlinks."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import RUN_ID, Project, load_stage, run_stage

from gitcron import runid

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


def run_folder(project: Project, run_id: str, *files: str) -> Path:
    folder = project.log_dir / "runs" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(name)
    return folder


def point_latest(project: Project, run_id: str) -> Path:
    latest = project.log_dir / "runs" / "latest"
    latest.unlink(missing_ok=True)
    latest.symlink_to(run_id, target_is_directory=True)
    return latest


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


def test_a_run_id_with_no_such_minute_is_not_a_run(
        project: Project, this_run: list[Path]) -> None:
    policy(project, days=1, keep_last=0)
    odd = [project.log_dir / f"workflow_{name}.log"
           for name in ("20260230_06h00", "20261123_25h00", "20261123_06h00_0")]
    for path in odd:
        path.write_text("not a run of ours")
    result = prune(project)
    assert result.returncode == 10, result.stderr
    assert all(path.exists() for path in odd)


# ---------------------------------------------------------------- the run id

RETENTION = load_stage(NAME)
NAMES = [
    "20261123_06h00", "20261123_06h00_2", "20261123_06h00_10", "20261123_06h00_123",
    "20240229_23h59", "00010101_00h00", "99991231_23h59",
    "20261123_06h00_1", "20261123_06h00_0", "20261123_06h00_01", "20261123_06h00_",
    "20230229_06h00", "20261131_06h00", "20261323_06h00", "20261100_06h00",
    "20261123_24h00", "20261123_06h60", "00000101_00h00", "2026112_06h00",
    "20261123-06h00", "20261123_06H00", "20261123_6h00", "x20261123_06h00",
    "\u0662\u0660\u0662\u0666\u0661\u0661\u0662\u0663_\u0660\u0666h\u0660\u0660",
    "20261123_06h00_\u0662", "", "latest", "20261123_06h00 ",
]


def orchestrator_parse(name: str) -> tuple[Any, ...] | None:
    try:
        return runid.parse(name)
    except ValueError:
        return None


def retention_parse(name: str) -> tuple[Any, ...] | None:
    try:
        return RETENTION.parse_run_id(name)
    except ValueError:
        return None


def orchestrator_run_of_file(name: str) -> str | None:
    """The run a file belongs to, for the orchestrator: a run file's name whose id parses."""
    run_id = runid.of_file(name)
    return run_id if run_id is not None and orchestrator_parse(run_id) else None


@pytest.mark.parametrize("name", NAMES)
def test_retention_reads_run_ids_as_the_orchestrator_writes_them(name: str) -> None:
    assert retention_parse(name) == orchestrator_parse(name)
    for file in (runid.log_name(name), runid.record_name(name), f"workflow_{name}.txt"):
        assert RETENTION.run_id_of_file(file) == orchestrator_run_of_file(file)


def test_every_month_day_hour_and_minute_is_read_alike() -> None:
    names = [f"2024{month:02}{day:02}_{hour:02}h{minute:02}"
             for month in range(14) for day in range(33)
             for hour, minute in ((0, 0), (23, 59), (24, 0), (12, 60))]
    disagree = [n for n in names if retention_parse(n) != orchestrator_parse(n)]
    assert disagree == []
    assert sum(retention_parse(n) is not None for n in names) == 366 * 2


def test_a_new_run_id_is_parsed_back_to_its_minute() -> None:
    moment = datetime(2026, 11, 23, 6, 0)
    for n in (1, 2, 10):
        made = runid.with_suffix(runid.stub(moment), n)
        assert RETENTION.parse_run_id(made) == (moment, n)


# ---------------------------------------------------------------- run folders

def test_a_run_folder_goes_with_its_run_and_latest_stays_on_a_kept_run(
        project: Project, this_run: list[Path]) -> None:
    policy(project, days=30, keep_last=0)
    old = run_id_at(NOW - timedelta(days=40))
    add_run(project, old)
    old_folder = run_folder(project, old, "report.txt", "deep/er/part.csv")
    kept = run_id_at(NOW - timedelta(days=3))
    add_run(project, kept)
    kept_folder = run_folder(project, kept, "report.txt")
    latest = point_latest(project, kept)

    result = prune(project)
    assert result.returncode == 0, result.stderr
    assert not old_folder.exists()
    assert kept_folder.exists() and latest.is_symlink() and latest.resolve() == kept_folder
    assert f"deleting runs/{old}/ (run of " in result.stdout
    assert "deleted 2 files and 1 run folder (" in result.stdout
    assert run_ids(project) == sorted([kept, RUN_ID])



def add_daily_run(project: Project, run_id: str, *files: str) -> list[Path]:
    """A run in the daily layout, at the paths the orchestrator's runid module gives."""
    paths = [runid.log_path(project.log_dir, run_id, "daily"),
             runid.record_path(project.log_dir, run_id, "daily")]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(run_id)
    folder = runid.run_dir(project.log_dir, run_id, "daily")
    for name in files:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(name)
    return paths


def test_daily_and_flat_runs_are_pruned_alike_and_emptied_day_folders_go(
        project: Project, this_run: list[Path]) -> None:
    policy(project, days=30, keep_last=0)
    flat_old = run_id_at(NOW - timedelta(days=400))
    add_run(project, flat_old)
    last_year = run_id_at(NOW - timedelta(days=330))  # 2025/12/28: its year goes whole
    add_daily_run(project, last_year, "out.csv")
    old = run_id_at(NOW - timedelta(days=31))
    add_daily_run(project, old, "out.csv")
    kept = run_id_at(NOW - timedelta(days=2))
    add_daily_run(project, kept, "out.csv")
    (project.log_dir / "runs" / "latest").symlink_to(runid.latest_target(kept, "daily"))
    (project.log_dir / "2025" / "notes").mkdir(parents=True)  # not a day folder: left

    result = prune(project)
    assert result.returncode == 0, result.stderr
    logs = project.log_dir
    assert not (logs / "2025" / "12").exists() and (logs / "2025" / "notes").is_dir()
    assert not (logs / "runs" / "2025").exists()
    assert not (logs / "2026" / "10").exists() and not (logs / "runs" / "2026" / "10").exists()
    assert runid.log_path(logs, kept, "daily").exists()
    assert (runid.run_dir(logs, kept, "daily") / "out.csv").exists()
    assert (logs / "runs" / "latest" / "out.csv").exists()
    assert (logs / "runs").is_dir() and this_run[0].exists()
    assert not (logs / f"workflow_{flat_old}.log").exists()
    assert f"deleting {runid.day(old)}/workflow_{old}.json (run of" in result.stdout
    assert f"deleting runs/{runid.day(old)}/{old}/ (run of" in result.stdout
    assert f"removed the empty folder runs/{runid.day(old)}" in result.stdout
    assert "3 old runs, 0 data files" in result.stdout


def test_a_run_folder_alone_is_aged_by_its_name(
        project: Project, this_run: list[Path]) -> None:
    policy(project, days=30, keep_last=1)
    old = run_folder(project, run_id_at(NOW - timedelta(days=31)), "a.txt")
    young = run_folder(project, run_id_at(NOW - timedelta(days=29)), "b.txt")
    other = project.log_dir / "runs" / "notes"
    other.mkdir()
    os.utime(other, (0, 0))
    result = prune(project)
    assert result.returncode == 0, result.stderr
    assert not old.exists() and young.exists() and other.exists()
    assert "1 old run, 0 data files" in result.stdout


def test_a_latest_left_pointing_at_a_pruned_run_is_removed(
        project: Project, this_run: list[Path]) -> None:
    policy(project, days=30, keep_last=0)
    old = run_id_at(NOW - timedelta(days=40))
    folder = run_folder(project, old, "report.txt")
    latest = point_latest(project, old)

    dry = prune(project, dry_run=True)
    assert dry.returncode == 0, dry.stderr
    assert "would delete runs/latest (it would point at nothing)" in dry.stdout
    assert latest.is_symlink() and folder.exists()

    result = prune(project)
    assert result.returncode == 0, result.stderr
    assert not latest.is_symlink() and not folder.exists()
    assert "deleting runs/latest (it points at nothing)" in result.stdout


def test_a_dangling_latest_alone_is_removed(project: Project, this_run: list[Path]) -> None:
    policy(project, days=30, keep_last=0)
    (project.log_dir / "runs").mkdir()
    latest = point_latest(project, "20200101_00h00")
    result = prune(project)
    assert result.returncode == 0, result.stderr
    assert not latest.is_symlink()


def test_a_run_folder_is_never_followed_through_a_symlink(
        project: Project, this_run: list[Path], tmp_path: Path) -> None:
    policy(project, days=1, keep_last=0)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    old = run_id_at(NOW - timedelta(days=40))
    runs = project.log_dir / "runs"
    runs.mkdir()
    (runs / old).symlink_to(outside, target_is_directory=True)
    inside = run_folder(project, run_id_at(NOW - timedelta(days=41)))
    (inside / "link").symlink_to(outside, target_is_directory=True)

    result = prune(project)
    assert result.returncode == 0, result.stderr
    assert (runs / old).is_symlink() and not inside.exists()
    assert (outside / "precious.txt").read_text() == "keep me"


def test_a_runs_folder_that_is_a_symlink_is_not_pruned(
        project: Project, this_run: list[Path], tmp_path: Path) -> None:
    policy(project, days=1, keep_last=0)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "20200101_00h00").mkdir(parents=True)
    (project.log_dir / "runs").symlink_to(elsewhere, target_is_directory=True)
    result = prune(project)
    assert result.returncode == 10
    assert "runs/ is a symlink: its run folders are not pruned" in result.stdout
    assert (elsewhere / "20200101_00h00").is_dir()


# ---------------------------------------------------------------- data files

def test_a_data_file_whose_name_is_not_utf8_is_pruned_and_named(
        project: Project, this_run: list[Path]) -> None:
    policy(project, days=30, keep_last=0)
    folder = project.log_dir / "data" / "quarantine"
    folder.mkdir(parents=True)
    odd = os.path.join(os.fsencode(folder), b"caf\xe9.csv")
    with open(odd, "wb") as handle:
        handle.write(b"x")
    os.utime(odd, (0, 0))
    result = prune(project)
    assert result.returncode == 0, result.stderr
    assert "deleting data/quarantine/caf\\xe9.csv (last changed 1970-01-01" in result.stdout
    assert not os.path.exists(odd)


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
