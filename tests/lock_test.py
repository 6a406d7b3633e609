"""One run at a time: the lock itself, and real orchestrator processes sharing a checkout."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest
from conftest import Project
from gitsync_test import clone, git, remote, remote_files  # noqa: F401  (remote is a fixture)

from gitcron import lock
from gitcron.codes import EXIT_LOCKED, EXIT_OK

# Waits until the file named by its first argument exists: no timing involved.
WAITER = """\
import os, sys, time
open(os.environ["HOLD_STARTED"], "w").close()
while not os.path.exists(os.environ["HOLD_RELEASE"]):
    time.sleep(0.02)
"""


def test_the_lock_lives_in_the_git_directory(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    git(tmp_path, "init", "-q", str(root))
    with lock.hold(root, root / "data and logs") as held:
        assert held.path == root / ".git" / "gitcron.lock"
        assert lock.held_fds() == (held.fd,)
        assert f"pid {os.getpid()}\n" in held.path.read_text()
    assert lock.held_fds() == ()
    assert git(root, "status", "--porcelain", "--ignored") == ""  # nothing to commit


def test_a_worktree_locks_its_own_git_directory(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    git(tmp_path, "init", "-q", str(root))
    git(root, "commit", "-q", "--allow-empty", "-m", "initial")
    git(root, "worktree", "add", "-q", str(tmp_path / "other"))
    with lock.hold(tmp_path / "other" / "sub", tmp_path / "logs") as held:
        assert held.path == root / ".git" / "worktrees" / "other" / "gitcron.lock"
        with lock.hold(root, root / "logs"):  # the main checkout is another checkout
            pass


def test_outside_a_repository_the_lock_is_in_log_dir(tmp_path: Path) -> None:
    with lock.hold(tmp_path, tmp_path / "logs") as held:
        assert held.path == tmp_path / "logs" / ".gitcron.lock"


def test_a_second_holder_is_told_who_holds_it(tmp_path: Path) -> None:
    with lock.hold(tmp_path, tmp_path), pytest.raises(lock.Busy) as busy, \
            lock.hold(tmp_path, tmp_path):
        pass
    assert f"(pid {os.getpid()}, started 20" in str(busy.value)
    assert "--wait SECONDS" in str(busy.value)


def test_a_waiting_holder_gets_it_when_it_is_released(tmp_path: Path) -> None:
    released = threading.Event()
    taken = threading.Event()

    def first() -> None:
        with lock.hold(tmp_path, tmp_path):
            taken.set()
            released.wait()

    thread = threading.Thread(target=first)
    thread.start()
    taken.wait()
    threading.Timer(0.2, released.set).start()
    with lock.hold(tmp_path, tmp_path, wait_seconds=60):
        assert released.is_set()
    thread.join()


def test_an_unusable_lock_file_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "logs").write_text("a file, not a folder")
    with pytest.raises(lock.FatalError, match="cannot open the run lock"), \
            lock.hold(tmp_path, tmp_path / "logs"):
        pass


def holding_project(project: Project, tmp_path: Path) -> dict[str, str]:
    project.module("1.hold.py", WAITER)
    return {"HOLD_STARTED": str(tmp_path / "started"), "HOLD_RELEASE": str(tmp_path / "go")}


def start(project: Project, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(project.command(*args), cwd=project.root, text=True,
                            env=dict(os.environ, **env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def wait_for(path: Path, proc: subprocess.Popen[str]) -> None:
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        threading.Event().wait(0.02)


def test_a_second_run_in_the_checkout_exits_4_naming_the_holder(
        project: Project, tmp_path: Path) -> None:
    env = holding_project(project, tmp_path)
    project.config({})
    first = start(project, env)
    try:
        wait_for(tmp_path / "started", first)
        second = project.run("--only", "1", env=env)
        assert second.returncode == EXIT_LOCKED
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and f"(pid {first.pid}, started " in lines[0], second.stderr
        assert "nothing ran" in lines[0]
    finally:
        (tmp_path / "go").touch()
        first.communicate(timeout=60)
    assert first.returncode == EXIT_OK
    assert len(project.logs()) == 1


def test_a_module_left_running_by_a_killed_run_keeps_the_next_run_out(
        project: Project, tmp_path: Path) -> None:
    """The orchestrator is SIGKILLed while its module runs: the module, which inherits
    the lock, keeps the checkout locked until it ends, so no run starts beside it."""
    env = holding_project(project, tmp_path)
    project.config({})
    first = start(project, env)
    wait_for(tmp_path / "started", first)
    os.kill(first.pid, signal.SIGKILL)
    first.communicate(timeout=60)
    try:
        second = project.run(env=env)
        assert second.returncode == EXIT_LOCKED, second.stdout + second.stderr
        assert f"(pid {first.pid}, started " in second.stderr
        assert "which is gone: a module it started is still running" in second.stderr
    finally:
        (tmp_path / "go").touch()  # the module ends, and the lock with it
    third = project.run("--wait", "60", env=env)
    assert third.returncode == EXIT_OK, third.stdout + third.stderr


def test_with_wait_the_second_run_runs_after_the_first(project: Project, tmp_path: Path) -> None:
    env = holding_project(project, tmp_path)
    project.config({})
    first = start(project, env)
    wait_for(tmp_path / "started", first)
    second = start(project, env, "--wait", "60")
    (tmp_path / "go").touch()
    assert first.wait(timeout=60) == EXIT_OK
    out, err = second.communicate(timeout=60)
    assert second.returncode == EXIT_OK, out + err
    assert len(project.logs()) == 2
    # The waiting run reads the state the first one left: its window starts where
    # the first one's ended, so no data is handed out twice.
    first_record, second_record = sorted(project.records(), key=lambda r: r["run_id"])
    assert second_record["window"]["start"] == first_record["window"]["end"]
    assert second_record["last_run_date_before"] == first_record["window"]["end"]


def test_many_runs_at_once_in_one_checkout_all_commit(remote: Path) -> None:  # noqa: F811
    project = clone(remote, "work clone")
    procs = [start(project, {}, "--wait", "120") for _ in range(8)]
    results = [(p.wait(timeout=120), p.communicate()) for p in procs]
    assert [code for code, _ in results] == [EXIT_OK] * 8, results
    assert not any("cannot lock ref" in out + err for _, (out, err) in results)
    logs = [f for f in remote_files(remote) if f.endswith(".log")]
    assert len(logs) == 8
    assert git(project.root, "status", "--porcelain") == ""


def test_main_returns_4_in_process(project: Project, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    from gitcron.cli import main

    project.module("1.a.py", "pass\n")
    project.config({})
    with lock.hold(project.root, project.log_dir):
        assert main(["--config", str(project.config_path), "--no-push"]) == EXIT_LOCKED
    assert "another run holds this checkout's lock" in capsys.readouterr().err
    assert project.logs() == []
