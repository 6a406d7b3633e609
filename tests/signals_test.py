"""Signals at any instant of the orchestrator's life: starting, running, finishing.
Each outcome is one of the contract's, never a traceback or a death by signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, Project

from gitcron.codes import EXIT_INTERRUPTED, EXIT_OK

# Delays spread over the start (imports, config, lock) and into the run.
DELAYS = (0.0, 0.005, 0.01, 0.02, 0.04, 0.07, 0.1, 0.14, 0.2, 0.3)


def wait_until_caught(pid: int, signum: int) -> None:
    """Until the process has a handler for `signum` (/proc/PID/status, SigCgt): before
    that the interpreter itself is still starting, and no code of ours can answer."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            status = open(f"/proc/{pid}/status").read()
        except FileNotFoundError:
            return
        caught = int(status.split("SigCgt:")[1].split()[0], 16)
        if caught & (1 << (signum - 1)):
            return
        time.sleep(0.0005)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux's /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_starting_or_running_exits_130_quietly(project: Project,
                                                               signum: int) -> None:
    project.module("1.wait.sh", "sleep 60\n")
    project.config({})
    for delay in DELAYS:
        proc = subprocess.Popen(project.command(), cwd=project.root, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        wait_until_caught(proc.pid, signal.SIGTERM)  # orchestrator.py's first line ran
        time.sleep(delay)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == EXIT_INTERRUPTED, (delay, proc.returncode, err)
        assert "Traceback" not in err and "Traceback" not in out, (delay, err)


def test_a_signal_after_the_run_does_not_change_its_exit_code(project: Project) -> None:
    # The module waits for the signal to have been sent before it ends: a SIGTERM to
    # the orchestrator alone, while the module runs, would interrupt; so the module
    # ignores nothing and the signal is sent after the record exists.
    project.module("1.a.py", "print('done')\n")
    project.config({})
    proc = subprocess.Popen(project.command(), cwd=project.root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    record = project.log_dir
    deadline = time.monotonic() + 60
    while not list(record.glob("workflow_*.json")) and time.monotonic() < deadline:
        time.sleep(0.001)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode in (EXIT_OK, EXIT_INTERRUPTED), (proc.returncode, err)
    assert proc.returncode != -signal.SIGTERM
    assert "Traceback" not in err
    assert project.record()["status"] == "success"


def test_sighup_is_a_cancel(project: Project) -> None:
    project.module("1.wait.sh", "sleep 60\n")
    project.config({})
    proc = subprocess.Popen(project.command(), cwd=project.root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while "starting" not in (project.logs()[0].read_text() if project.logs() else "") and (
            time.monotonic() < deadline):
        time.sleep(0.01)
    proc.send_signal(signal.SIGHUP)
    proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED
    assert project.record()["status"] == "interrupted"


def test_a_cancel_that_python_could_not_raise_while_starting_is_not_lost(tmp_path) -> None:
    # Where an exception cannot propagate (a finaliser, an import lock's callback),
    # CPython prints "Exception ignored" and goes on: the cancel must still end the run.
    script = tmp_path / "swallowed.py"
    script.write_text(
        "import os, signal\n"
        "from gitcron import interrupt\n"
        "from gitcron.execute import Cancel\n"
        "interrupt.catch()\n"
        "class Finalised:\n"
        "    def __del__(self):\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "Finalised()\n"
        "with Cancel() as cancel:\n"
        "    print('requested', cancel.requested, cancel.signum == signal.SIGTERM)\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)
    assert proc.stdout == "requested True True\n", proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr


def test_a_cancel_that_python_wraps_in_another_error_while_starting_exits_130(tmp_path) -> None:
    # Python 3.11 wraps an exception raised by a descriptor's __set_name__, while a
    # class is made at import, in a RuntimeError; the cancel must still end quietly.
    script = tmp_path / "wrapped.py"
    script.write_text(
        "import os, signal, sys\n"
        "import gitcron.__main__ as entry\n"
        "import gitcron.cli as cli\n"
        "def starting(argv):\n"
        "    class Descriptor:\n"
        "        def __set_name__(self, owner, name):\n"
        "            os.kill(os.getpid(), signal.SIGTERM)\n"
        "    class Made:\n"
        "        field = Descriptor()\n"
        "    return 0\n"
        "cli.main = starting\n"
        "sys.exit(entry.main([]))\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, proc.stderr
    assert "Traceback" not in proc.stderr
