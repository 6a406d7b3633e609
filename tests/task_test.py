"""A run whose modules are tasks of another engine (gitcron/task.py): its start,
the task command (`python -m gitcron task`) as real processes, and its end,
read back by `history` and `--resume`. Airflow itself is tested in .ci/airflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import OK, REPO, Project, fail

from gitcron import config as cfg
from gitcron import task
from gitcron import window as windows
from gitcron.codes import MODULE_SKIP

STARTED = datetime(2026, 11, 23, 6, 0, 5, tzinfo=timezone.utc)


def begin(project: Project, **options: object) -> task.TaskRun:
    config = cfg.load(str(project.config_path))
    return task.begin(config, STARTED, None, windows.default(None, STARTED, None, config.tz),
                      **options)  # type: ignore[arg-type]


def run_task(project: Project, run: task.TaskRun, name: str, *args: str,
             env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], dict]:
    outcome = project.root / "outcome.json"
    outcome.unlink(missing_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "gitcron", "task", name, "--config", str(project.config_path),
         "--run", run.to_json(), "--outcome", str(outcome), *args],
        cwd=REPO, env=dict(os.environ, **(env or {})), capture_output=True, text=True,
        timeout=60, stdin=subprocess.DEVNULL)
    return done, (json.loads(outcome.read_text()) if outcome.exists() else {})


def test_a_module_runs_with_the_runners_contract_masking_and_levels(project: Project) -> None:
    project.module("1.a.py", """
        import os, sys
        print("stdin:", repr(sys.stdin.read()))
        print("pin", os.environ["PIN"], "module", os.environ["PIPELINE_MODULE"])
        print("window end is the start:", os.environ["PIPELINE_WINDOW_END"] == os.environ["PIPELINE_RUN_STARTED"])
        print("::add-mask::added-value")
        print("added-value again")
        print("::error::it broke", flush=True)
        print("on stderr", file=sys.stderr)
    """)
    project.config(modules=["modules/1.a.py"], mask_env=["PIN"])
    run = begin(project)
    done, outcome = run_task(project, run, "1.a", env={"PIN": "pq7z"})
    assert done.returncode == 0, done.stdout + done.stderr
    log = run.log_path.read_text()
    assert "| INFO     | 1.a | stdin: ''" in log
    assert "pin *** module 1.a" in log
    assert "window end is the start: True" in log
    assert "| ERROR    | 1.a | it broke" in log
    assert "| STDERR   | 1.a | on stderr" in log
    assert "added-value" not in log and "pq7z" not in log
    assert "pq7z" not in done.stdout and "added-value" not in done.stdout
    assert "| INFO     | 1.a | [1/1] starting modules/1.a.py" in done.stdout
    assert outcome["status"] == "success" and outcome["outcome"]["exit_code"] == 0


def test_exit_codes_tell_the_engine_how_the_module_ended(project: Project) -> None:
    project.module("1.skip.py", f"import sys\nsys.exit({MODULE_SKIP})\n")
    project.module("2.bad.py", fail(7))
    project.config(modules=["modules/1.skip.py", {"path": "modules/2.bad.py", "retries": 1}])
    run = begin(project)
    assert run_task(project, run, "1.skip")[0].returncode == MODULE_SKIP
    first, outcome = run_task(project, run, "2.bad")
    assert first.returncode == 1 and outcome["failure"] == "7" and outcome["retry"] is True
    assert "attempt 1 failed (exit code 7); retrying in 0 s" in first.stdout
    last, _ = run_task(project, run, "2.bad", "--attempt", "2")
    assert last.returncode == 1
    assert "failed (critical): exit code 7, after 2 attempts" in last.stdout


def test_the_retry_policy_decides_whether_the_engine_tries_again(project: Project) -> None:
    project.module("1.bad.py", fail(3))
    project.config(modules=[{"path": "modules/1.bad.py", "retries": 2,
                             "retry_on_exit_codes": [75]}])
    done, outcome = run_task(project, begin(project), "1.bad")
    assert done.returncode == 1 and outcome["retry"] is False
    assert "exit code 3 is not in retry_on_exit_codes [75]" in done.stdout


def test_leftovers_are_killed_and_the_task_ends(project: Project) -> None:
    pids = project.root / "pids"
    project.module("1.bg.sh", f"sleep 3017 &\necho $! > '{pids}'\n"
                   f"setsid sleep 3018 >/dev/null 2>&1 </dev/null &\necho $! >> '{pids}'\n"
                   "echo started\n")
    project.config(modules=["modules/1.bg.sh"])
    done, outcome = run_task(project, begin(project), "1.bg")
    assert done.returncode == 0
    assert "the module left processes running; they were killed" in done.stdout
    assert outcome["outcome"]["stray_processes"] is True
    left = [int(pid) for pid in pids.read_text().split()]
    assert len(left) == 2 and not [pid for pid in left if running(pid)]


def running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped (this process's, not the machine's)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_recovery_task_is_told_of_its_module(project: Project) -> None:
    project.module("1.load.py", fail(7))
    project.module("undo.sh", 'echo "undo $PIPELINE_MODULE $PIPELINE_FAILED_MODULE '
                   '$PIPELINE_FAILED_EXIT_CODE"\n')
    project.config(modules=[{"path": "modules/1.load.py", "on_failure": "modules/undo.sh"}])
    run = begin(project)
    done, outcome = run_task(project, run, "1.load", "--recover", "timeout")
    assert done.returncode == 0
    assert "| 1.load.on_failure | undo 1.load 1.load timeout" in run.log_path.read_text()
    assert outcome["status"] == "recovered"


def test_two_runs_in_one_minute_get_their_own_ids_and_folders(project: Project) -> None:
    project.module("1.a.py", OK)
    project.config(modules=["modules/1.a.py"])
    first, second = begin(project), begin(project)
    assert (first.run_id, second.run_id) == ("20261123_06h00", "20261123_06h00_2")
    assert first.run_dir.is_dir() and second.run_dir.is_dir()



def test_a_daily_layout_puts_the_engines_run_in_its_day(project: Project) -> None:
    project.module("1.a.py", OK)
    project.module("2.b.py", fail(3))
    project.config(modules=["modules/1.a.py", "modules/2.b.py"], log_layout="daily")
    run = begin(project)
    day = project.log_dir / "2026" / "11" / "23"
    assert run.log_path == day / f"workflow_{run.run_id}.log" and run.log_path.exists()
    assert run.run_dir == project.log_dir / "runs" / "2026" / "11" / "23" / run.run_id
    states = {"1.a": task.TaskState("success", run_task(project, run, "1.a")[1], None),
              "2.b": task.TaskState("failed", run_task(project, run, "2.b")[1], None)}
    record = task.finish(cfg.load(str(project.config_path)), run, states)
    assert (day / f"workflow_{run.run_id}.json").is_file()
    assert record["log_file"] == f"data and logs/2026/11/23/workflow_{run.run_id}.log"
    assert (run.run_dir / "review.txt").exists()

def test_finish_writes_a_record_that_history_and_resume_read(project: Project) -> None:
    project.module("1.a.py", OK)
    project.module("2.b.py", fail(3))
    project.module("3.c.py", OK)
    project.config(modules=["modules/1.a.py", "modules/2.b.py", "modules/3.c.py"])
    run = begin(project, trigger="airflow manual")
    states = {}
    for name, state in (("1.a", "success"), ("2.b", "failed")):
        outcome = run_task(project, run, name)[1]
        states[name] = task.TaskState(state, outcome, None)
    states["3.c"] = task.TaskState("upstream_failed", None, None)
    config = cfg.load(str(project.config_path))
    record = task.finish(config, run, states, extra={"airflow": {"dag_id": "d"}})
    assert record["status"] == "failed"
    assert [m["status"] for m in record["modules"]] == ["success", "failed", "not_run"]
    assert record["trigger"] == "airflow manual" and record["airflow"] == {"dag_id": "d"}
    assert project.record()["run_id"] == run.run_id
    assert (run.run_dir / "review.txt").exists()
    history = subprocess.run([sys.executable, "-m", "gitcron", "history", "--config",
                              str(project.config_path)], cwd=REPO, capture_output=True,
                             text=True, timeout=60)
    assert "airflow manual" in history.stdout and "failed" in history.stdout
    resumed = project.run("--resume", "--list")
    assert "2.b" in resumed.stdout and "1.a" not in resumed.stdout.split("not in this run")[0]


def test_the_data_can_live_outside_the_project(project: Project, tmp_path: Path) -> None:
    project.module("1.a.py", "import os\nprint(os.environ['PIPELINE_LOG_DIR'])\n")
    project.config(modules=["modules/1.a.py"])
    config = task.under_data_dir(cfg.load(str(project.config_path)), tmp_path / "data")
    assert config.log_dir == tmp_path / "data" / "data and logs"
    run = task.begin(config, STARTED, None, windows.default(None, STARTED, None, config.tz))
    done, _ = run_task(project, run, "1.a", "--data-dir", str(tmp_path / "data"))
    assert done.returncode == 0
    assert str(tmp_path / "data" / "data and logs") in run.log_path.read_text()
    assert not project.log_dir.exists()


@pytest.mark.parametrize(("args", "message"), [
    (["9.none"], "no module named '9.none'"),
    (["1.a", "--recover", "3"], "has no on_failure script"),
])
def test_bad_input_is_one_line_and_exit_2(project: Project, args: list[str],
                                          message: str) -> None:
    project.module("1.a.py", OK)
    project.config(modules=["modules/1.a.py"])
    done, _ = run_task(project, begin(project), *args)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_run_that_is_not_json_is_one_line_and_exit_2(project: Project) -> None:
    project.module("1.a.py", OK)
    project.config(modules=["modules/1.a.py"])
    done = subprocess.run([sys.executable, "-m", "gitcron", "task", "1.a", "--config",
                           str(project.config_path), "--run", "{not json"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--run: not a run of this runner" in done.stderr


def test_a_bad_airflow_env_mapping_is_named(project: Project) -> None:
    project.module("1.a.py", OK)
    project.config(modules=["modules/1.a.py"], airflow=["x"])
    with pytest.raises(cfg.FatalError, match="airflow: must be an object with one key, env"):
        cfg.load(str(project.config_path))
    project.config(modules=["modules/1.a.py"], airflow={"env": {"A": 1}})
    with pytest.raises(cfg.FatalError, match="env: must map variable names to strings"):
        cfg.load(str(project.config_path))


def test_finish_notifies_with_the_local_runners_texts(project: Project, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from notifyservers import HookServer

    hook = HookServer()
    try:
        project.module("1.load.py", "import os, sys\n"
                       "print('cannot connect with', os.environ['DB_PASSWORD'], file=sys.stderr)\n"
                       "sys.exit(3)\n")
        project.config(modules=["modules/1.load.py"], notify=[{"webhook": hook.url()}])
        monkeypatch.setenv("DB_PASSWORD", "db-secret-value")
        assert project.run("--no-push").returncode == 1
        run = begin(project, trigger="airflow manual")
        outcome = run_task(project, run, "1.load")[1]
        task.finish(cfg.load(str(project.config_path)), run,
                    {"1.load": task.TaskState("failed", outcome, None)})
    finally:
        hook.close()
    local, airflow = (json.loads(posted.body) for posted in hook.posted)
    assert local["text"].replace(local["run"]["run_id"], "ID") == \
        airflow["text"].replace(airflow["run"]["run_id"], "ID")
    assert "db-secret-value" not in json.dumps(airflow)
    assert airflow["run"]["modules"][0]["status"] == "failed"


def test_a_worker_without_the_runs_log_dir_is_told_in_one_line(project: Project,
                                                                tmp_path: Path) -> None:
    project.module("1.a.py", OK)
    project.config(modules=["modules/1.a.py"])
    run = begin(project)._replace(log_dir=str(tmp_path / "not shared"))
    done, _ = run_task(project, run, "1.a")
    assert done.returncode == 2
    assert "cannot open the run's log" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_task_killed_from_outside_is_a_failed_module(project: Project) -> None:
    project.module("1.a.py", OK)
    project.module("2.b.py", OK)
    project.config(modules=["modules/1.a.py", "modules/2.b.py"])
    results = task.module_results(cfg.load(str(project.config_path)).modules or (), {
        "1.a": task.TaskState("failed", None, None),
        "2.b": task.TaskState("upstream_failed", None, None)})
    assert [r.status for r in results] == ["failed", "not_run"]


def test_the_monitor_hears_the_start_and_the_end_with_one_id(project: Project,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    from urllib.parse import parse_qs, urlsplit

    from notifyservers import HookServer

    hook = HookServer()
    try:
        project.module("1.a.py", OK)
        project.config(modules=["modules/1.a.py"],
                       monitor={"url": "${HC_PING_URL}", "kind": "healthchecks"})
        monkeypatch.setenv("HC_PING_URL", hook.url("/ping/key"))
        monkeypatch.setenv("no_proxy", "127.0.0.1")
        run = begin(project)
        outcome = run_task(project, run, "1.a")[1]
        record = task.finish(cfg.load(str(project.config_path)), run,
                             {"1.a": task.TaskState("success", outcome, None)})
    finally:
        hook.close()
    pings = [(urlsplit(p.path).path, parse_qs(urlsplit(p.path).query)) for p in hook.posted]
    rid = record["monitor"]["rid"]
    assert pings == [("/ping/key/start", {"rid": [rid]}), ("/ping/key", {"rid": [rid]})]
