"""kill -9 at any instant leaves the checkout consistent, and the next run works.

git commands run in sessions of their own, so killing the orchestrator's process
group leaves a git command to finish on its own: each test waits for that
orphan before it looks (the hook below records its git's pid).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ORCHESTRATOR, Project
from gitsync_test import clone, git, remote, remote_files  # noqa: F401  (remote is a fixture)

from gitcron import leftovers, lock
from gitcron.codes import EXIT_OK

# Stops the first transaction that touches $FAULT_REF in its "prepared" state (refs
# locked, nothing moved yet) until $FAULT_DIR/go exists, then lets it commit, or
# aborts it with FAULT_EXIT=1. Nothing waits on a clock.
HOOK = """\
#!/bin/sh
refs=$(cat)
[ -n "$FAULT_DIR" ] && [ "$1" = prepared ] || exit 0
case "$refs" in *" $FAULT_REF"*) ;; *) exit 0 ;; esac
[ -e "$FAULT_DIR/entered" ] && exit 0
echo $PPID > "$FAULT_DIR/git.pid"
touch "$FAULT_DIR/entered"
while [ ! -e "$FAULT_DIR/go" ]; do sleep 0.01; done
exit "${FAULT_EXIT:-0}"
"""


# Loaded by every Python process started with PYTHONPATH at its folder: stops the
# first os.replace onto a file whose name matches $FAULT_RENAME, with its temporary
# file written and synced, until $FAULT_DIR/go exists. The test kills the run there.
RENAME_HOOK = """\
import fnmatch, os, time
_dir, _pattern = os.environ.get("FAULT_DIR"), os.environ.get("FAULT_RENAME")
if _dir and _pattern:
    _replace = os.replace
    def _slow_replace(src, dst, *args, **kwargs):
        entered = os.path.join(_dir, "entered")
        if fnmatch.fnmatch(os.path.basename(dst), _pattern) and not os.path.exists(entered):
            open(entered, "w").close()
            while not os.path.exists(os.path.join(_dir, "go")):
                time.sleep(0.01)
        return _replace(src, dst, *args, **kwargs)
    os.replace = _slow_replace
"""


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (FileNotFoundError, IndexError):
        return True


def wait_until(condition: object, what: str) -> None:
    deadline = time.monotonic() + 60  # a guard against hanging, not a measurement
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.01)


def settle(project: Project) -> None:
    """Wait for git commands the killed run left behind: local ones hold its lock."""
    with lock.hold(project.root, project.log_dir, wait_seconds=60):
        pass


def assert_consistent(project: Project) -> None:
    json.loads(project.config_path.read_text())
    fsck = subprocess.run(["git", "fsck", "--no-progress"], cwd=project.root,
                          capture_output=True, text=True, check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert not any(word in fsck.stdout + fsck.stderr for word in ("error", "missing", "broken"))
    assert not (project.root / ".git" / "index.lock").exists()
    staged = git(project.root, "diff", "--cached", "--name-status").splitlines()
    assert not [line for line in staged if line.startswith("D")], staged


def assert_next_run_works(project: Project, remote: Path) -> None:  # noqa: F811
    result = project.run(env={"FAULT_DIR": ""})
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    assert git(project.root, "rev-parse", "HEAD") == git(remote, "rev-parse", "main")
    assert git(project.root, "log", "-1", "--format=%s").startswith("pipeline: success run")
    assert git(project.root, "diff", "--cached", "--name-only") == ""
    committed = git(project.root, "show", "--name-only", "--format=", "HEAD").splitlines()
    assert not [name for name in committed if leftovers.is_temporary(Path(name).name)]
    git_dir = project.root / ".git"
    assert not list(git_dir.glob("pipeline-index-*")) and not (git_dir / "pipeline-commit.json"
                                                              ).exists()
    assert_consistent(project)


def temporary_files(project: Project) -> list[str]:
    return sorted(path.relative_to(project.root).as_posix()
                  for path in project.root.rglob(".*") if ".git" not in path.parts
                  and leftovers.is_temporary(path.name))


def start(project: Project, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(project.command(), cwd=project.root, env=dict(os.environ, **env),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # it had finished
    proc.wait()


@pytest.mark.parametrize(("ref", "exit_code"), [
    ("refs/heads/main", "0"),  # killed while HEAD moves: the real index was updated first
    ("refs/heads/main", "1"),  # killed after the index, and HEAD never moved
    ("refs/remotes/origin/main", "0"),  # killed while the push lands
])
def test_a_kill_at_each_step_of_the_commit(remote: Path, tmp_path: Path, ref: str,  # noqa: F811
                                           exit_code: str) -> None:
    project = clone(remote, "work clone")
    hook = project.root / ".git" / "hooks" / "reference-transaction"
    hook.write_text(HOOK)
    hook.chmod(0o755)
    faults = tmp_path / "faults"
    faults.mkdir()
    proc = start(project, {"FAULT_DIR": str(faults), "FAULT_REF": ref, "FAULT_EXIT": exit_code})
    wait_until(lambda: (faults / "entered").exists() or proc.poll() is not None, "the hook")
    assert proc.poll() is None, "the run ended before the hook stopped it"
    kill(proc)
    (faults / "go").touch()
    orphan = int((faults / "git.pid").read_text())
    wait_until(lambda: gone(orphan), "the orphaned git command")
    settle(project)
    assert_consistent(project)
    killed = project.records()[0]["run_id"]
    moved = exit_code == "0" and ref == "refs/heads/main"
    in_head = git(project.root, "ls-tree", "-r", "--name-only", "HEAD").splitlines()
    assert (f"data and logs/workflow_{killed}.log" in in_head) is (
        moved or ref.startswith("refs/remotes"))
    if not moved:  # until the next run's repair, at worst the run's files are staged
        assert set(git(project.root, "diff", "--cached", "--name-status").splitlines()) <= {
            f"A\tdata and logs/workflow_{killed}.log", f"A\tdata and logs/workflow_{killed}.json",
            "A\tdata and logs/badge.json", "M\tconfig.json"}
    assert_next_run_works(project, remote)
    if moved:  # the killed run's commit went out with the next one
        assert f"data and logs/workflow_{killed}.log" in remote_files(remote)


@pytest.mark.parametrize("renamed", ["workflow_*.json", "config.json"])
def test_a_kill_while_a_file_is_renamed_into_place(remote: Path, tmp_path: Path,  # noqa: F811
                                                   renamed: str) -> None:
    project = clone(remote, "work clone")
    config = project.read_config()
    config["git"]["paths"] = ["data and logs", "."]  # a temporary file would be committed
    project.config(config)
    git(project.root, "commit", "-q", "-am", "commit everything")
    git(project.root, "push", "-q")
    hooks, faults = tmp_path / "hooks", tmp_path / "faults"
    hooks.mkdir()
    faults.mkdir()
    (hooks / "sitecustomize.py").write_text(RENAME_HOOK)
    proc = start(project, {"FAULT_DIR": str(faults), "FAULT_RENAME": renamed,
                           "PYTHONPATH": str(hooks)})
    wait_until(lambda: (faults / "entered").exists() or proc.poll() is not None, "the rename")
    assert proc.poll() is None, "the run ended before the hook stopped it"
    kill(proc)
    settle(project)
    left = temporary_files(project)
    assert len(left) == 1, left
    killed = project.logs()[0].name.removeprefix("workflow_").removesuffix(".log")
    assert_consistent(project)
    result = project.run()
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    said = [line for line in result.stdout.splitlines() if "temporary file" in line]
    assert len(said) == 1 and "removed 1 temporary file a killed run left: " + left[0] in said[0]
    assert temporary_files(project) == []
    assert not [name for name in remote_files(remote) if name.endswith(".tmp")]
    record = json.loads((project.log_dir / f"workflow_{killed}.json").read_text())
    if renamed == "config.json":  # the record was in place: the run had ended
        assert record["status"] == "success"
        return
    assert record["status"] == "interrupted" and "killed" in record["note"]
    assert [m["status"] for m in record["modules"]] == ["success"]  # as its log says
    assert f"data and logs/workflow_{killed}.json" in remote_files(remote)
    assert "recorded as interrupted" in result.stdout
    history = subprocess.run([sys.executable, str(ORCHESTRATOR), "history", "--config",
                              str(project.config_path)], capture_output=True, text=True,
                             check=False)
    assert history.returncode == 0 and killed in history.stdout
    row = [line for line in history.stdout.splitlines() if line.startswith(killed + " ")]
    assert len(row) == 1 and "interrupted" in row[0], history.stdout
    assert_next_run_works(project, remote)


def test_kill_at_random_instants(remote: Path) -> None:  # noqa: F811
    project = clone(remote, "work clone")
    project.module("1.a.py", "for i in range(200):\n    print('line', i)\n")
    project.module("2.b.sh", "echo shell module\n")
    config = project.read_config()
    config["git"]["paths"] = ["data and logs"]
    project.config(config)
    git(project.root, "add", "-A")
    git(project.root, "commit", "-q", "-m", "two modules, the log folder committed")
    git(project.root, "push", "-q")
    begun = time.monotonic()
    assert_next_run_works(project, remote)
    typical = time.monotonic() - begun  # scales the delays; nothing is asserted on it
    rng = random.Random(20261123)
    for _ in range(30):
        proc = start(project, {})
        time.sleep(rng.uniform(0.0, typical))
        kill(proc)
        settle(project)
        assert_consistent(project)
        assert_next_run_works(project, remote)
