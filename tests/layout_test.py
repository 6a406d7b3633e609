"""`log_layout: "daily"`: a run's files in the folders of its day, read alongside
the flat layout by every reader (history, status, --resume, retention, renaming)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import OK, ORCHESTRATOR, Project, fail
from gitsync_test import clone, git, remote, remote_files, run_concurrently  # noqa: F401

from gitcron import records, runid
from gitcron.codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE


def command(project: Project, *args: str) -> list[str]:
    return [sys.executable, str(ORCHESTRATOR), args[0], "--config", str(project.config_path),
            *args[1:]]


def daily_files(project: Project) -> list[Path]:
    return sorted(p for p in project.log_dir.rglob("workflow_*") if p.parent != project.log_dir)


def test_a_daily_run_writes_its_files_in_the_folders_of_its_day(project: Project) -> None:
    project.module("1.out.py", """
        import os, pathlib
        print("run dir", os.environ["PIPELINE_RUN_DIR"])
        (pathlib.Path(os.environ["PIPELINE_RUN_DIR"]) / "out.txt").write_text("x")
    """)
    project.config(log_layout="daily")
    assert project.run().returncode == EXIT_OK
    record_path, log = daily_files(project)
    run_id = runid.of_file(log.name)
    assert run_id is not None
    day = runid.day(run_id)
    assert log.parent == record_path.parent == project.log_dir / day
    assert not list(project.log_dir.glob("workflow_*"))
    record = json.loads(record_path.read_text())
    assert record["log_file"] == f"data and logs/{day}/workflow_{run_id}.log"
    assert record["run_dir"] == f"data and logs/runs/{day}/{run_id}"
    run_dir = project.log_dir / "runs" / day / run_id
    assert f"run dir {run_dir.resolve()}" in log.read_text().replace(str(project.root),
                                                                      str(project.root.resolve()))
    latest = project.log_dir / "runs" / "latest"
    assert latest.is_symlink() and str(latest.readlink()) == f"{day}/{run_id}"
    assert (latest / "out.txt").read_text() == "x"


def test_an_empty_daily_run_folder_goes_with_its_day_folders(project: Project) -> None:
    project.module("1.a.py", OK)
    project.config(log_layout="daily")
    assert project.run().returncode == EXIT_OK
    assert json.loads(daily_files(project)[0].read_text())["run_dir"] is None
    assert not (project.log_dir / "runs").exists() or not any(
        (project.log_dir / "runs").iterdir())


def test_a_bad_layout_is_one_line_and_exit_2(project: Project) -> None:
    project.module("1.a.py", OK)
    project.config(log_layout="monthly")
    result = project.run()
    assert result.returncode == EXIT_USAGE
    assert result.stderr.strip().endswith('log_layout: must be "flat" or "daily" (got "monthly")')
    assert not project.log_dir.exists()


def test_switching_layouts_keeps_one_history_for_every_reader(project: Project) -> None:
    """Flat runs, then the key set: history, status and --resume read both, no move."""
    project.module("1.a.py", OK)
    project.module("2.b.py", "import os, sys\nsys.exit(0 if os.path.exists('fixed') else 3)\n")
    project.config(schedule="*/5 * * * *")
    assert project.run().returncode == EXIT_FAILED  # flat, failed at 2.b
    flat = sorted(project.log_dir.glob("workflow_*.json"))
    assert len(flat) == 1
    project.config(dict(project.read_config(), log_layout="daily"))
    (project.root / "fixed").write_text("")
    resumed = project.run("--resume")
    assert resumed.returncode == EXIT_OK, resumed.stdout
    assert "resuming run" in resumed.stdout and "at 2.b" in resumed.stdout
    (daily,) = [p for p in daily_files(project) if p.suffix == ".json"]
    record = json.loads(daily.read_text())
    assert record["selection"]["resume_of"] == json.loads(flat[0].read_text())["run_id"]
    # last_run_date is the resumed (flat) run's start: its record was found.
    assert project.read_config()["last_run_date"][:16] == (
        json.loads(flat[0].read_text())["started"][:16])
    found = [path for path, _ in records.records_newest_first(project.log_dir)]
    assert found == [daily, flat[0]]
    history = subprocess.run(command(project, "history", "--json"), capture_output=True,
                             text=True, cwd=project.root, check=True)
    assert [json.loads(line)["status"] for line in history.stdout.splitlines()] == [
        "success", "failed"]
    status = subprocess.run(command(project, "status", "--json"), capture_output=True,
                            text=True, cwd=project.root)
    assert json.loads(status.stdout)["newest_run"]["run_id"] == record["run_id"]


def test_records_of_both_layouts_merge_newest_first(tmp_path: Path) -> None:
    ids = ["20261122_23h59", "20261123_00h00", "20261123_00h00_2", "20261123_00h00_10",
           "20261231_23h59", "20270101_00h00"]
    for n, run_id in enumerate(ids):
        path = runid.record_path(tmp_path, run_id, "daily" if n % 2 else "flat")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"run_id": run_id, "modules": []}))
    (tmp_path / "2026" / "notes.txt").write_text("not a month")
    (tmp_path / "2025").write_text("a file named like a year")
    got = [r["run_id"] for _, r in records.records_newest_first(tmp_path)]
    assert got == ids[::-1]


def test_daily_runs_pushed_at_once_from_three_clones_all_land(remote: Path) -> None:  # noqa: F811
    """The same minute in three clones: renamed runs keep the daily layout, and
    each record names its own log and folder."""
    projects = [clone(remote, f"clone {i}") for i in range(3)]
    for p in projects:
        p.module("1.a.py", "import os, pathlib\n"
                           "(pathlib.Path(os.environ['PIPELINE_RUN_DIR']) / 'o.txt').write_text("
                           "os.environ['PIPELINE_RUN_ID'])\n")
        config = p.read_config()
        config["git"]["push_retries"] = 6
        p.config(dict(config, log_layout="daily"))
    results = run_concurrently(projects)
    assert [r.returncode for r in results] == [EXIT_OK] * 3, [r.stdout for r in results]
    files = remote_files(remote)
    recorded = [f for f in files if f.endswith(".json") and "/workflow_" in f]
    assert len(recorded) == 3 and not any(f.startswith("data and logs/workflow_") for f in files)
    for path in recorded:
        record = json.loads(git(remote, "show", f"main:{path}"))
        day = runid.day(record["run_id"])
        assert path == f"data and logs/{day}/workflow_{record['run_id']}.json"
        assert record["log_file"] in files
        assert record["run_dir"] == f"data and logs/runs/{day}/{record['run_id']}"
        assert git(remote, "show", f"main:{record['run_dir']}/o.txt") in (
            record["run_id"], runid.stub_of(record["run_id"]),
            *(runid.with_suffix(runid.stub_of(record["run_id"]), n) for n in (2, 3)))
    latest = git(remote, "show", "main:data and logs/runs/latest")
    assert latest.count("/") == 3 and f"data and logs/runs/{latest}/o.txt" in files


@pytest.mark.parametrize("layout", ["flat", "daily"])
def test_a_failed_daily_run_has_its_review_in_its_folder(project: Project, layout: str) -> None:
    project.module("1.bad.py", fail(3))
    project.config(log_layout=layout)
    assert project.run().returncode == EXIT_FAILED
    (record_path,) = [p for p in project.log_dir.rglob("workflow_*.json")]
    record = json.loads(record_path.read_text())
    run_dir = runid.run_dir(project.log_dir, record["run_id"], layout)
    assert (run_dir / "review.txt").is_file()
    assert record["run_dir"] == run_dir.relative_to(project.root).as_posix()
