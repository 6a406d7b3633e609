"""`<log_dir>/badge.json`, shields.io's endpoint format, written by every whole run
that commits: real runs, a real bare remote."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import Project

from gitcron.codes import EXIT_FAILED, EXIT_OK

BADGE = "data and logs/badge.json"
# The module's exit code is read from a file the test writes before each run.
BY_FILE = "import pathlib, sys\nsys.exit(int(pathlib.Path('outcome').read_text()))\n"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture
def pushed(tmp_path: Path) -> tuple[Project, Path]:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(tmp_path, "clone", "-q", str(bare), str(tmp_path / "work"))
    project = Project(tmp_path / "work")
    project.module("1.source.py", BY_FILE)
    project.module("2.extra.py", "import os, sys\nsys.exit(int(os.environ.get('EXTRA', '0')))\n")
    project.config(modules=["modules/1.source.py", {"path": "modules/2.extra.py",
                                                     "critical": False}],
                   git={"push": "always"})
    (project.root / ".gitignore").write_text("outcome\n")
    git(project.root, "add", ".")
    git(project.root, "commit", "-q", "-m", "initial")
    git(project.root, "push", "-q", "origin", "HEAD:main")
    return project, bare


def run(project: Project, code: int, *args: str, **env: str):
    (project.root / "outcome").write_text(str(code))
    return project.run(*args, env=env)


def badge(bare: Path) -> dict:
    return json.loads(git(bare, "show", f"main:{BADGE}"))


def test_the_badge_follows_the_whole_runs(pushed: tuple[Project, Path]) -> None:
    project, bare = pushed
    assert run(project, 0).returncode == EXIT_OK
    assert badge(bare) == {"schemaVersion": 1, "label": "pipeline", "message": "passing",
                           "color": "brightgreen"}
    assert BADGE in git(bare, "show", "--name-only", "--format=", "main").splitlines()
    assert run(project, 0, EXTRA="3").returncode == EXIT_OK
    assert badge(bare)["message"] == "partial" and badge(bare)["color"] == "yellow"
    assert run(project, 3).returncode == EXIT_FAILED
    assert badge(bare)["message"] == "failing" and badge(bare)["color"] == "red"
    # A narrowed run says little of the pipeline: the badge stays as it was.
    assert run(project, 0, "--only", "source").returncode == EXIT_OK
    assert badge(bare)["message"] == "failing"
    assert (project.log_dir / "badge.json").read_text() == git(bare, "show", f"main:{BADGE}") + "\n"


def test_no_commit_no_badge(pushed: tuple[Project, Path]) -> None:
    project, _ = pushed
    assert run(project, 0, "--no-push").returncode == EXIT_OK
    assert run(project, 0, "--dry-run").returncode == EXIT_OK
    assert not (project.log_dir / "badge.json").exists()


def test_with_commit_changes_the_badge_is_a_change_only_when_its_message_is(
        pushed: tuple[Project, Path]) -> None:
    project, bare = pushed
    project.config(project.read_config(), git={"push": "always", "commit": "changes"})
    git(project.root, "commit", "-q", "-am", "commit only changes")
    git(project.root, "push", "-q", "origin", "HEAD:main")
    assert run(project, 3).returncode == EXIT_FAILED  # a failure always commits
    assert badge(bare)["message"] == "failing"
    project.config(project.read_config(), modules=["modules/1.source.py"])
    git(project.root, "commit", "-q", "-am", "one module")
    git(project.root, "push", "-q", "origin", "HEAD:main")
    before = git(bare, "rev-list", "--count", "main")
    # Every module skips: nothing changed but the badge's message, failing -> passing.
    assert run(project, 10).returncode == EXIT_OK
    assert badge(bare)["message"] == "passing"
    assert int(git(bare, "rev-list", "--count", "main")) == int(before) + 1
    # Again: the badge says the same, so there is nothing to commit.
    result = run(project, 10)
    assert result.returncode == EXIT_OK
    assert "nothing changed under git.paths: no commit (git.commit: changes)" in result.stdout
    assert int(git(bare, "rev-list", "--count", "main")) == int(before) + 1


def test_two_clones_changing_the_badge_at_once_both_land(pushed: tuple[Project, Path]) -> None:
    """The second push is rebased onto the first: both changed the badge, and the
    run pushing last writes it (not a conflict to settle by hand, exit 3)."""
    first, bare = pushed
    git(bare.parent, "clone", "-q", str(bare), str(bare.parent / "second"))
    second = Project(bare.parent / "second")
    assert run(first, 0).returncode == EXIT_OK
    result = run(second, 3)
    assert result.returncode == EXIT_FAILED, result.stdout + result.stderr
    assert badge(bare)["message"] == "failing"
    records = [name for name in git(bare, "ls-tree", "-r", "--name-only", "main").splitlines()
               if name.startswith("data and logs/workflow_") and name.endswith(".json")]
    assert len(records) == 2
