"""git.commit "changes" and a branch that has been quiet for 50 days: the run
commits anyway, so GitHub does not disable the schedule. Real runs, a real
bare remote, commits dated in the past with git's own variables."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import Project

from gitcron import run
from gitcron.codes import EXIT_OK

DAY = 86400


def git(cwd: Path, *args: str, **env: str) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                            check=True, env=dict(os.environ, **env))
    return result.stdout.strip()


def quiet_project(tmp_path: Path, days_ago: int) -> tuple[Project, Path]:
    """A clone whose only commit is `days_ago` days old; every module skips."""
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(tmp_path, "clone", "-q", str(bare), str(tmp_path / "work"))
    project = Project(tmp_path / "work")
    project.module("1.check.py", "import sys\nsys.exit(10)\n")
    project.config(git={"push": "always", "commit": "changes"})
    project.log_dir.mkdir()  # a pipeline that ran before: its badge says passing
    (project.log_dir / "badge.json").write_text(run.badge_json("success"))
    when = f"@{int(time.time()) - days_ago * DAY} +0000"
    git(project.root, "add", ".")
    git(project.root, "commit", "-q", "-m", "initial", GIT_COMMITTER_DATE=when,
        GIT_AUTHOR_DATE=when)
    git(project.root, "push", "-q", "origin", "HEAD:main")
    return project, bare


def test_a_quiet_branch_gets_a_keep_alive_commit_once(tmp_path: Path) -> None:
    project, bare = quiet_project(tmp_path, 51)
    result = project.run()
    assert result.returncode == EXIT_OK
    assert "git.commit changes: committing even if nothing changed (keep-alive: the newest " \
           "commit (" in result.stdout
    assert git(bare, "rev-list", "--count", "main") == "2"
    message = git(bare, "log", "-1", "--format=%B", "main")
    assert message.startswith("pipeline: success run ")
    assert "\n\nkeep-alive: the newest commit (" in message
    assert "is 51 days old, and GitHub disables the schedule" in message
    second = project.run()  # the branch is fresh again: nothing to commit
    assert second.returncode == EXIT_OK and "keep-alive" not in second.stdout
    assert "nothing changed under git.paths: no commit (git.commit: changes)" in second.stdout
    assert git(bare, "rev-list", "--count", "main") == "2"


@pytest.mark.parametrize("days", [0, 49])
def test_a_branch_active_within_50_days_gets_no_commit(tmp_path: Path, days: int) -> None:
    project, bare = quiet_project(tmp_path, days)
    result = project.run()
    assert result.returncode == EXIT_OK
    assert "keep-alive" not in result.stdout
    assert git(bare, "rev-list", "--count", "main") == "1"
