"""on_failure recovery scripts and the run's folder, through real runs."""

from __future__ import annotations

import os

import pytest
from conftest import Project, fail

from gitcron.codes import EXIT_FAILED, EXIT_OK

RECOVER = """\
import os, sys
print("rolling back", os.environ["PIPELINE_FAILED_MODULE"], os.environ["PIPELINE_FAILED_EXIT_CODE"],
      os.environ["PIPELINE_MODULE"])
open("rolled-back", "w").write(os.environ["PIPELINE_FAILED_EXIT_CODE"])
sys.exit(int(os.environ.get("RECOVERY_EXIT", "0")))
"""


def pipeline(project: Project, critical: bool, module_code: str = fail(3, "disk full"),
             retries: int = 0, **extra: object) -> None:
    project.module("1.load.py", module_code)
    project.module("2.after.py", "open('after-ran', 'w')\n")
    project.module("rollback.py", RECOVER)
    project.config(modules=[
        {"path": "modules/1.load.py", "critical": critical, "on_failure": "modules/rollback.py",
         "retries": retries, **extra},
        "modules/2.after.py"], last_run_date="2026-01-01T00:00:00+00:00")


@pytest.mark.parametrize("critical", [True, False])
def test_a_successful_recovery_lets_the_run_go_on_as_partial(project: Project,
                                                             critical: bool) -> None:
    pipeline(project, critical)
    result = project.run()
    assert result.returncode == EXIT_OK, result.stdout
    record = project.record()
    assert record["status"] == "partial"
    assert project.statuses() == {"1.load": "recovered", "2.after": "success"}
    recovery = record["modules"][0]["recovery"]
    assert recovery["path"] == "modules/rollback.py"
    assert recovery["status"] == "success" and recovery["exit_code"] == 0
    assert recovery["duration_seconds"] >= 0
    assert (project.root / "rolled-back").read_text() == "3"
    assert (project.root / "after-ran").exists()
    log = project.log_text()
    assert "| INFO     | 1.load.on_failure | rolling back 1.load 3 1.load" in log
    assert "1.load is recovered" in log
    assert project.read_config()["last_run_date"] != "2026-01-01T00:00:00+00:00"
    assert "(recovered: 1.load)" in log.splitlines()[-2] + log.splitlines()[-1]


def test_a_failed_recovery_of_a_critical_module_stops_the_run(project: Project) -> None:
    pipeline(project, True)
    result = project.run(env={"RECOVERY_EXIT": "5"})
    assert result.returncode == EXIT_FAILED
    assert project.statuses() == {"1.load": "failed", "2.after": "not_run"}
    assert project.record()["modules"][0]["recovery"]["status"] == "failed"
    assert project.record()["modules"][0]["recovery"]["exit_code"] == 5
    assert not (project.root / "after-ran").exists()
    assert project.read_config()["last_run_date"] == "2026-01-01T00:00:00+00:00"


def test_a_failed_recovery_of_a_non_critical_module_is_partial(project: Project) -> None:
    pipeline(project, False)
    assert project.run(env={"RECOVERY_EXIT": "5"}).returncode == EXIT_OK
    assert project.record()["status"] == "partial"
    assert project.statuses() == {"1.load": "failed", "2.after": "success"}


def test_recovery_runs_once_after_the_last_retry_and_never_after_a_skip(project: Project) -> None:
    pipeline(project, True, retries=2)
    project.run()
    assert project.record()["modules"][0]["attempts"] == 3
    assert project.log_text().count("rolling back") == 1
    (project.root / "rolled-back").unlink()
    pipeline(project, True, module_code="import sys; sys.exit(10)\n")
    project.run()
    assert not (project.root / "rolled-back").exists()


def test_a_recovery_that_times_out_is_a_failed_recovery(project: Project) -> None:
    pipeline(project, True, timeout_seconds=1)
    (project.root / "modules" / "rollback.py").write_text("import time\ntime.sleep(60)\n")
    result = project.run()
    assert result.returncode == EXIT_FAILED
    recovery = project.record()["modules"][0]["recovery"]
    assert recovery["status"] == "failed" and recovery["exit_code"] is not None


def test_the_exit_code_names_a_timeout_and_a_signal(project: Project) -> None:
    pipeline(project, True, module_code="import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    project.run()
    assert (project.root / "rolled-back").read_text() == "signal 9"
    pipeline(project, True, module_code="import time\ntime.sleep(60)\n", timeout_seconds=1)
    project.run()
    assert (project.root / "rolled-back").read_text() == "timeout"


def test_list_shows_the_recovery_script(project: Project) -> None:
    pipeline(project, True)
    out = project.run("--list").stdout
    assert "modules/1.load.py (on failure: modules/rollback.py)" in out


def test_an_empty_run_folder_is_removed_and_a_full_one_kept(project: Project) -> None:
    project.module("1.a.py", """\
        import os, pathlib
        folder = pathlib.Path(os.environ["PIPELINE_RUN_DIR"])
        assert folder.is_dir(), folder
        if os.environ.get("WRITE"):
            (folder / "report.txt").write_text("hello")
    """)
    project.config({})
    assert project.run().returncode == EXIT_OK
    record = project.record()
    assert record["run_dir"] is None
    assert not (project.log_dir / "runs" / record["run_id"]).exists()
    assert project.run(env={"WRITE": "1"}).returncode == EXIT_OK
    newest = max(project.records(), key=lambda r: r["run_id"])
    assert newest["run_dir"] == f"data and logs/runs/{newest['run_id']}"
    latest = project.log_dir / "runs" / "latest"
    assert latest.is_symlink() and os.readlink(latest) == newest["run_id"]  # relative
    assert (latest / "report.txt").read_text() == "hello"
    assert not [p for p in (project.log_dir / "runs").iterdir() if p.name.startswith(".")]


def test_latest_moves_to_the_newest_run_with_files(project: Project) -> None:
    project.module("1.a.py", """\
        import os, pathlib
        (pathlib.Path(os.environ["PIPELINE_RUN_DIR"]) / "out").write_text(os.environ["PIPELINE_RUN_ID"])
    """)
    project.config({})
    project.run()
    project.run()
    ids = sorted(r["run_id"] for r in project.records())
    latest = project.log_dir / "runs" / "latest"
    assert os.readlink(latest) == ids[-1]
    assert (latest / "out").read_text() == ids[-1]
    assert all((project.log_dir / "runs" / i / "out").exists() for i in ids)




def test_a_recovered_module_is_a_warning_annotation_in_actions(project: Project, tmp_path) -> None:
    pipeline(project, True)
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
           "GITHUB_OUTPUT": str(tmp_path / "output.txt")}
    result = project.run("--no-push", env=env)
    assert result.returncode == 0
    assert ("::warning title=1.load::1.load (critical) failed: exit code 3; recovered by "
            "modules/rollback.py; last stderr line: disk full") in result.stdout
    assert "::error" not in result.stdout
