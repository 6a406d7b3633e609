"""End to end: `python orchestrator.py` as a real process on a throw-away project."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from conftest import OK, Project, fail

from gitcron.codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE


def test_order_statuses_and_the_record(project: Project) -> None:
    project.module("1.fetch.py", "print('fetched {0}')\n")
    project.module("2.transform.sh", "echo transformed; exit 10\n")
    project.module("0.prune.py", OK)
    project.config(modules=["modules/1.fetch.py", "modules/2.transform.sh", "modules/0.prune.py"],
                   custom_setting={"keep": True})
    result = project.run(env={"GITHUB_EVENT_NAME": "schedule"})
    assert result.returncode == EXIT_OK, result.stderr
    record = project.record()
    assert record["status"] == "success"
    assert record["trigger"] == "schedule"
    assert record["dry_run"] is False
    assert record["last_run_date_before"] is None
    assert record["log_file"] == f"data and logs/workflow_{record['run_id']}.log"
    assert [(m["name"], m["status"], m["exit_code"], m["attempts"]) for m in record["modules"]] == [
        ("1.fetch", "success", 0, 1), ("2.transform", "skipped", 10, 1), ("0.prune", "success", 0, 1)]
    module = record["modules"][0]
    assert set(module) == {"name", "path", "status", "exit_code", "attempts", "timed_out",
                           "started", "finished", "duration_seconds", "peak_rss_mb", "error"}
    assert module["path"] == "modules/1.fetch.py" and module["peak_rss_mb"] > 0
    assert module["error"] is None
    log = project.log_text()
    assert log.index("fetched {0}") < log.index("transformed")
    assert "| INFO     | 1.fetch | fetched {0}" in log
    assert "skipped (exit code 10" in log
    config = project.read_config()
    assert list(config) == ["modules", "custom_setting", "last_run_date"]
    assert config["last_run_date"] == record["started"][:19] + record["started"][23:]
    assert result.stdout.count("fetched {0}") == 1  # the console sees the lines too


def test_last_run_date_before_is_the_previous_runs_start(project: Project) -> None:
    project.module("1.a.py", "import os; print('before=' + os.environ['PIPELINE_LAST_RUN_DATE'])")
    project.config(last_run_date="2026-01-01T00:00:00+00:00")
    assert project.run().returncode == EXIT_OK
    assert project.record()["last_run_date_before"] == "2026-01-01T00:00:00+00:00"
    assert "before=2026-01-01T00:00:00+00:00" in project.log_text()


def test_a_failed_critical_module_stops_the_run(project: Project) -> None:
    project.module("1.a.py", fail(3, "disk full"))
    project.module("2.b.py", "open('ran-b', 'w')\n")
    project.config(modules=["modules/1.a.py", "modules/2.b.py"],
                   last_run_date="2026-01-01T00:00:00+00:00")
    result = project.run()
    assert result.returncode == EXIT_FAILED
    assert project.statuses() == {"1.a": "failed", "2.b": "not_run"}
    assert project.record()["status"] == "failed"
    assert not (project.root / "ran-b").exists()
    assert project.read_config()["last_run_date"] == "2026-01-01T00:00:00+00:00"
    log = project.log_text()
    assert "| ERROR    | 1.a | failed (critical): exit code 3" in log
    assert "| ERROR    | 1.a | disk full" in log


def test_a_failed_non_critical_module_lets_the_run_go_on(project: Project) -> None:
    project.module("1.a.py", fail(1))
    project.module("2.b.py", OK)
    project.config(modules=[{"path": "modules/1.a.py", "critical": False}, "modules/2.b.py"])
    result = project.run()
    assert result.returncode == EXIT_OK
    assert project.record()["status"] == "partial"
    assert project.statuses() == {"1.a": "failed", "2.b": "success"}
    assert "last_run_date" in project.read_config()
    assert "| WARNING  | orchestrator | run " in result.stdout
    assert "(non-critical)" in project.log_text()


def test_retries_until_success(project: Project) -> None:
    project.module("1.flaky.py", """
        import pathlib, sys
        tries = pathlib.Path("tries")
        n = int(tries.read_text()) + 1 if tries.exists() else 1
        tries.write_text(str(n))
        sys.exit(0 if n == 3 else 1)
    """)
    project.config(modules=[{"path": "modules/1.flaky.py", "retries": 5,
                             "retry_delay_seconds": 0.01}])
    assert project.run().returncode == EXIT_OK
    module = project.record()["modules"][0]
    assert (module["status"], module["attempts"]) == ("success", 3)
    assert project.log_text().count("retrying in 0.01 s") == 2


def test_retries_run_out(project: Project) -> None:
    project.module("1.bad.py", fail(2))
    project.config(modules=[{"path": "modules/1.bad.py", "retries": 2}])
    assert project.run().returncode == EXIT_FAILED
    module = project.record()["modules"][0]
    assert (module["status"], module["attempts"], module["exit_code"]) == ("failed", 3, 2)



COUNTED = """
    import pathlib, sys
    tries = pathlib.Path("tries")
    n = int(tries.read_text()) + 1 if tries.exists() else 1
    tries.write_text(str(n))
    sys.exit({codes}[n - 1])
"""


def test_only_listed_exit_codes_are_retried_with_exponential_backoff(project: Project) -> None:
    project.module("1.flaky.py", COUNTED.format(codes=[75, 75, 0]))
    project.config(retry_on_exit_codes=[75], retry_backoff="exponential", modules=[
        {"path": "modules/1.flaky.py", "retries": 4, "retry_delay_seconds": 0.01}])
    assert project.run().returncode == EXIT_OK
    module = project.record()["modules"][0]
    assert (module["status"], module["attempts"]) == ("success", 3)
    lines = [line for line in project.log_text().splitlines() if "retrying in" in line]
    assert len(lines) == 2
    assert "attempt 1 failed (exit code 75); retrying in 0.0" in lines[0]
    assert "(retry 1 of 4; exponential backoff, exit code 75 (EX_TEMPFAIL" in lines[0]
    assert "(retry 2 of 4; exponential backoff," in lines[1]


def test_an_unlisted_exit_code_is_not_retried_and_the_log_says_why(project: Project) -> None:
    project.module("1.bad.py", COUNTED.format(codes=[75, 2, 0]))
    project.config(modules=[{"path": "modules/1.bad.py", "retries": 5,
                             "retry_on_exit_codes": [75], "retry_delay_seconds": 0.01}])
    assert project.run().returncode == EXIT_FAILED
    module = project.record()["modules"][0]
    assert (module["status"], module["attempts"], module["exit_code"]) == ("failed", 2, 2)
    assert ("| WARNING  | 1.bad | attempt 2 failed (exit code 2); not retried: exit code 2 is "
            "not in retry_on_exit_codes [75]") in project.log_text()


def test_a_timeout_is_not_retried_when_only_codes_are_listed(project: Project) -> None:
    project.module("1.slow.py", "open('count', 'a').write('x')\nimport time; time.sleep(600)\n")
    project.config(modules=[{"path": "modules/1.slow.py", "retries": 2, "timeout_seconds": 0.5,
                             "retry_on_exit_codes": [75]}])
    assert project.run().returncode == EXIT_FAILED
    assert (project.root / "count").read_text() == "x"
    assert "not retried: a timeout is not in retry_on_exit_codes [75]" in project.log_text()


def test_exit_75_without_retries_says_so(project: Project) -> None:
    project.module("1.later.py", fail(75))
    project.config(modules=["modules/1.later.py"])
    assert project.run().returncode == EXIT_FAILED
    assert ("attempt 1 failed (exit code 75); not retried: retries is 0"
            in project.log_text())


def test_a_skip_is_never_retried(project: Project) -> None:
    project.module("1.skip.py", "open('count', 'a').write('x')\nimport sys; sys.exit(10)\n")
    project.config(modules=[{"path": "modules/1.skip.py", "retries": 3}])
    assert project.run().returncode == EXIT_OK
    assert (project.root / "count").read_text() == "x"
    assert project.statuses() == {"1.skip": "skipped"}


def test_a_timeout_is_a_failure_and_recorded(project: Project) -> None:
    project.module("1.slow.py", "import time; time.sleep(600)\n")
    project.config(modules=[{"path": "modules/1.slow.py", "timeout_seconds": 0.5}])
    assert project.run().returncode == EXIT_FAILED
    module = project.record()["modules"][0]
    assert module["timed_out"] is True and module["status"] == "failed"
    assert "failed (critical): timed out" in project.log_text()


@pytest.mark.parametrize("flags", [(), ("--only", "1"), ("--from", "a"), ("--skip", "2.b")])
def test_selection_flags(project: Project, flags: tuple[str, ...]) -> None:
    project.module("1.a.py", "open('ran-a', 'w')\n")
    project.module("2.b.py", "open('ran-b', 'w')\n")
    project.config({})
    assert project.run(*flags).returncode == EXIT_OK
    ran = sorted(p.name for p in project.root.glob("ran-*"))
    assert ran == {(): ["ran-a", "ran-b"], ("--only", "1"): ["ran-a"],
                   ("--from", "a"): ["ran-a", "ran-b"], ("--skip", "2.b"): ["ran-a"]}[flags]


def test_resume_runs_from_the_failed_module(project: Project) -> None:
    project.module("1.a.py", "open('ran-a', 'a').write('x')\n")
    project.module("2.b.py", "import os, sys; sys.exit(0 if os.path.exists('fixed') else 1)\n")
    project.module("3.c.py", "open('ran-c', 'a').write('x')\n")
    project.config({})
    assert project.run().returncode == EXIT_FAILED
    (project.root / "fixed").touch()
    assert project.run("--resume").returncode == EXIT_OK
    assert (project.root / "ran-a").read_text() == "x"
    assert (project.root / "ran-c").read_text() == "x"
    newest = max(project.records(), key=lambda r: r["started"])
    assert [m["name"] for m in newest["modules"]] == ["2.b", "3.c"]
    result = project.run("--resume")
    assert result.returncode == EXIT_OK
    assert "nothing to resume" in result.stderr
    assert len(project.logs()) == 2  # the no-op resume wrote nothing


def test_an_unknown_module_name_exits_2_and_writes_nothing(project: Project) -> None:
    project.module("1.a.py", OK)
    project.config({})
    result = project.run("--only", "nope")
    assert result.returncode == EXIT_USAGE
    assert result.stderr.strip() == "orchestrator: --only: unknown module 'nope'; known modules: 1.a"
    assert not project.log_dir.exists()


def test_dry_run_and_force_reach_modules_and_leave_state_alone(project: Project) -> None:
    project.module("1.a.py", "import os; print(os.environ['PIPELINE_DRY_RUN'] + "
                   "os.environ['PIPELINE_FORCE'])\n")
    project.config({})
    assert project.run("--dry-run", "--force").returncode == EXIT_OK
    assert "| 1.a | 11" in project.log_text()
    assert project.record()["dry_run"] is True
    assert "last_run_date" not in project.read_config()


def test_secrets_are_masked_in_the_file_the_console_and_the_record(project: Project) -> None:
    project.module("1.leak.py", """
        import os, sys
        print("token", os.environ["API_TOKEN"])
        print("db", os.environ["DATABASE_URL"], file=sys.stderr)
        print("::add-mask::run-time-secret")
        print("made run-time-secret")
        sys.exit(os.environ["API_TOKEN"] == "tok-123456" and 3)
    """)
    (project.root / ".env").write_text("API_TOKEN=tok-123456\nDATABASE_URL=ignored\n")
    project.config(mask_env=["DATABASE_URL"], modules=[{"path": "modules/1.leak.py"}])
    result = project.run(env={"DATABASE_URL": "postgres://u:pw@db/x"})  # the variable set wins
    assert result.returncode == EXIT_FAILED  # the module saw the .env value
    log = project.log_text()
    everything = log + result.stdout + result.stderr + json.dumps(project.records())
    for secret in ("tok-123456", "postgres://u:pw@db/x", "run-time-secret"):
        assert secret not in everything
    assert "| 1.leak | token ***" in log and "| 1.leak | db ***" in log
    assert "| 1.leak | made ***" in log
    assert "add-mask" not in everything


def test_three_runs_in_a_row_get_three_logs(project: Project) -> None:
    project.module("1.a.py", "import os; print('run', os.environ['PIPELINE_RUN_ID'])\n")
    project.config({})
    for _ in range(3):
        assert project.run().returncode == EXIT_OK
    logs = project.logs()
    assert len(logs) == 3
    run_ids = {r["run_id"] for r in project.records()}
    assert len(run_ids) == 3
    for log in logs:
        run_id = log.stem.removeprefix("workflow_")
        assert run_id in run_ids
        assert f"| 1.a | run {run_id}\n" in log.read_text()


def wait_for(path, proc: subprocess.Popen) -> None:
    """Until the module has written `path` (no fixed sleeps: the test waits for the event)."""
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_module_records_an_interrupted_run(project: Project, signum: int) -> None:
    started = project.root / "started"
    project.module("1.long.py", f"""
        import time
        open({str(started)!r}, "w").close()
        time.sleep(600)
    """)
    project.module("2.next.py", "open('ran-next', 'w')\n")
    project.config(last_run_date="2026-01-01T00:00:00+00:00")
    proc = subprocess.Popen(project.command(), cwd=project.root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_for(started, proc)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == EXIT_INTERRUPTED, err
    record = project.record()
    assert record["status"] == "interrupted"
    assert project.statuses() == {"1.long": "failed", "2.next": "not_run"}
    assert project.read_config()["last_run_date"] == "2026-01-01T00:00:00+00:00"
    assert not (project.root / "ran-next").exists()
    assert "interrupted" in project.log_text()


def test_an_unexpected_error_is_logged_with_its_traceback(project: Project) -> None:
    """A folder squats on the run record's name: writing the record fails, loudly."""
    project.module("1.a.py", """
        import os, pathlib
        name = f"workflow_{os.environ['PIPELINE_RUN_ID']}.json"
        (pathlib.Path(os.environ["PIPELINE_LOG_DIR"]) / name / "x").mkdir(parents=True)
    """)
    project.config({})
    result = project.run()
    assert result.returncode == EXIT_FAILED
    assert "Traceback" not in result.stderr  # the log has it, in the log's own format
    log = project.log_text()
    assert "| ERROR    | orchestrator | could not write the run record" in log
    assert "| ERROR    | orchestrator | Traceback (most recent call last):" in log
    assert "last_run_date" not in project.read_config()


def test_run_from_another_folder(project: Project, tmp_path) -> None:
    project.module("1.a.py", "import os; print('cwd', os.getcwd())\n")
    project.config({})
    result = subprocess.run(project.command(), cwd=tmp_path, capture_output=True, text=True,
                            env=dict(os.environ))
    assert result.returncode == EXIT_OK
    assert f"| 1.a | cwd {project.root}" in project.log_text()


