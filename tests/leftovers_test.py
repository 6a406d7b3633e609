"""What a killed run leaves beside its files, finished by the next run: a run
killed with kill -9 has a log and no record; the next run records it as
interrupted, so that `--resume` and `history` see it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from datetime import timezone
from pathlib import Path

import pytest
from conftest import Project
from faults_test import gone, wait_until

from gitcron import leftovers
from gitcron.codes import EXIT_OK

WAITING = """\
import os, pathlib, time
faults = os.environ.get("FAULT_DIR")
if faults:
    pathlib.Path(faults, "module.pid").write_text(str(os.getpid()))
    pathlib.Path(faults, "entered").touch()
    while True:
        time.sleep(1)
print("b done")
"""


def killed_mid_module(project: Project, tmp_path: Path) -> str:
    faults = tmp_path / "faults"
    faults.mkdir()
    proc = subprocess.Popen(project.command(), cwd=project.root, start_new_session=True,
                            env=dict(os.environ, FAULT_DIR=str(faults)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: (faults / "entered").exists() or proc.poll() is not None, "module b")
    assert proc.poll() is None, "the run ended before module b stopped it"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    module = int((faults / "module.pid").read_text())  # in a process group of its own
    os.kill(module, signal.SIGKILL)
    wait_until(lambda: gone(module), "the module's end")
    (log,) = project.log_dir.rglob("workflow_*.log")
    assert not list(project.log_dir.rglob("workflow_*.json"))
    return log.name.removeprefix("workflow_").removesuffix(".log")


@pytest.mark.parametrize("layout", ["flat", "daily"])
def test_a_run_killed_mid_module_is_recorded_and_resumed(project: Project, tmp_path: Path,
                                                         layout: str) -> None:
    project.module("1.a.py", "print('a done')\n")
    project.module("2.b.py", WAITING)
    project.module("3.c.py", "print('c done')\n")
    project.config({"log_layout": layout})
    killed = killed_mid_module(project, tmp_path)
    result = project.run("--resume")
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    assert f"run {killed} was killed before its record was written: recorded as " \
           "interrupted" in result.stdout
    assert f"resuming run {killed} at 2.b" in result.stdout
    (log,) = project.log_dir.rglob(f"workflow_{killed}.log")
    record = json.loads(log.with_suffix(".json").read_text())
    assert record["status"] == "interrupted" and record["note"] == leftovers.KILLED_NOTE
    assert [(m["name"], m["status"]) for m in record["modules"]] == [
        ("1.a", "success"), ("2.b", "failed"), ("3.c", "not_run")]
    assert record["log_file"] == log.relative_to(project.root).as_posix()
    again = project.run()  # repaired once: nothing more to say
    assert "killed" not in again.stdout


def test_the_record_follows_the_log() -> None:
    lines = [
        "2026-11-23 06:00:00.001 | INFO     | orchestrator | run 20261123_06h00 started "
        "(dry run): 3 modules: 1.a, 2.b, 3.c",
        "2026-11-23 06:00:00.002 | INFO     | 1.a | [1/3] starting modules/1.a.py",
        "2026-11-23 06:00:00.003 | INFO     | 1.a | failed (looks like a status line)",
        "2026-11-23 06:00:00.004 | ERROR    | 1.a | failed (exit code 3): boom, after 1 attempt",
        "2026-11-23 06:00:00.005 | WARNING  | 1.a | recovery succeeded in 0.1 s: 1.a is recovered",
        "2026-11-23 06:00:00.006 | INFO     | 2.b | [2/3] starting modules/2.b.py",
        "2026-11-23 06:00:00.007 | INFO     | 2.b | skipped (exit code 10: conditions not met)",
        "a line without the log's shape",
    ]
    record = leftovers.killed_record("20261123_06h00", lines, timezone.utc)
    assert [m["status"] for m in record["modules"]] == ["recovered", "skipped", "not_run"]
    assert record["dry_run"] is True and record["status"] == "interrupted"
    assert record["started"] == "2026-11-23T06:00:00+00:00"


def test_only_the_runners_temporary_names() -> None:
    assert leftovers.is_temporary(".workflow_20261123_06h00.json.0123456789ab.tmp")
    assert leftovers.is_temporary(".config.json.abcdef012345.tmp")
    assert leftovers.is_temporary(".latest.4242")
    for name in (".workflow_x.json.tmp", "notes.tmp", ".config.json.ABCDEF012345.tmp",
                 ".latest", ".latest.x", "config.json.0123456789ab.tmp"):
        assert not leftovers.is_temporary(name), name
