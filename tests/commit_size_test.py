"""Commits that know their size: git.max_file_mb, diff stats in the message, and
the step output `changed`, on real runs against real bare remotes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import Project
from github_test import actions_env
from gitsync_test import clone, git, remote  # noqa: F401  (remote is a fixture)
from runner_model import parse_file_command

from gitcron.codes import EXIT_OK, EXIT_PUSH, EXIT_USAGE

WRITE = """
import os, pathlib
out = pathlib.Path("data and logs/data")
out.mkdir(parents=True, exist_ok=True)
(out / "{name}").write_bytes(b"x" * {size})
"""
MB = 1024 * 1024


def with_paths(project: Project, **git_settings: object) -> None:
    config = project.read_config()
    config["git"] = dict(config["git"], paths=["data and logs"], **git_settings)
    project.config(config)
    git(project.root, "commit", "-qam", "commit the log folder")
    git(project.root, "push", "-q")


def test_a_file_at_the_limit_stops_commit_back_before_any_push(remote: Path) -> None:  # noqa: F811
    project = clone(remote, "work clone")
    project.module("1.a.py", WRITE.format(name="big.bin", size=2 * MB)
                   + WRITE.format(name="small.bin", size=10).split("\n", 1)[1]
                   .replace("out.mkdir(parents=True, exist_ok=True)\n", ""))
    project.module("2.b.py", WRITE.format(name="exact.bin", size=MB))
    with_paths(project, max_file_mb=1)
    before_remote, before_head = git(remote, "rev-parse", "main"), git(project.root, "rev-parse",
                                                                       "HEAD")
    result = project.run()
    assert result.returncode == EXIT_PUSH, result.stdout + result.stderr
    line = next(ln for ln in result.stdout.splitlines() if "commit-back stopped" in ln)
    assert "2 files at or above git.max_file_mb (1 MB)" in line
    assert "data and logs/data/big.bin (2.0 MB)" in line
    assert "data and logs/data/exact.bin (1.0 MB)" in line and "small.bin" not in line
    assert git(remote, "rev-parse", "main") == before_remote  # nothing was pushed
    assert git(project.root, "rev-parse", "HEAD") == before_head  # nor committed
    assert git(project.root, "diff", "--cached", "--name-only") == ""
    assert (project.log_dir / "data" / "big.bin").stat().st_size == 2 * MB  # nothing lost
    assert project.record()["status"] == "success"


def test_an_lfs_pointer_is_fine_however_large_the_file(remote: Path, tmp_path: Path  # noqa: F811
                                                        ) -> None:
    """A clean filter (what Git LFS installs) turns the file into a small pointer:
    the pointer is what is committed and pushed, so it is what counts."""
    project = clone(remote, "work clone")
    cleaner = tmp_path / "clean.py"
    cleaner.write_text("import hashlib, sys\ndata = sys.stdin.buffer.read()\n"
                       "sys.stdout.write('version https://git-lfs.github.com/spec/v1\\n"
                       "oid sha256:' + hashlib.sha256(data).hexdigest() + "
                       "'\\nsize ' + str(len(data)) + '\\n')\n")
    git(project.root, "config", "filter.lfs.clean", f"{sys.executable} {cleaner}")
    git(project.root, "config", "filter.lfs.smudge", "cat")
    (project.root / ".gitattributes").write_text("*.bin filter=lfs -text\n")
    git(project.root, "add", ".gitattributes")
    project.module("1.a.py", WRITE.format(name="big.bin", size=2 * MB))
    with_paths(project, max_file_mb=1)
    result = project.run()
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    pointer = git(remote, "show", "main:data and logs/data/big.bin")
    assert pointer.startswith("version https://git-lfs.github.com/spec/v1")


def test_the_commit_message_carries_its_diff_stats(remote: Path) -> None:  # noqa: F811
    project = clone(remote, "work clone")
    project.module("1.a.py", "import pathlib\npathlib.Path('data and logs/data').mkdir("
                             "parents=True)\npathlib.Path('data and logs/data/t.csv')"
                             ".write_text('a\\nb\\nc\\n')\n")
    with_paths(project)
    assert project.run().returncode == EXIT_OK
    body = git(remote, "log", "-1", "--format=%b", "main")
    counted = git(remote, "diff", "--shortstat", "main~1", "main")
    assert body.strip() == counted.strip()
    assert " files changed, " in body and "insertions(+)" in body


@pytest.mark.parametrize(("module", "changed"), [
    ("print('nothing new')\n", "false"),
    ("import os, pathlib\npathlib.Path('data and logs/data').mkdir(parents=True, exist_ok=True)\n"
     "pathlib.Path('data and logs/data/' + os.environ['PIPELINE_RUN_ID']).write_text('x')\n",
     "true"),
    ("import json, os, pathlib\np = pathlib.Path('config.json')\nc = json.loads(p.read_text())\n"
     "c['owned_by_a_module'] = {'x': os.environ['PIPELINE_RUN_ID']}\n"
     "p.write_text(json.dumps(c))\n", "true"),
])
def test_the_changed_output_says_whether_more_than_the_runs_own_files_changed(
        remote: Path, tmp_path: Path, module: str, changed: str) -> None:  # noqa: F811
    project = clone(remote, "work clone")
    project.module("1.a.py", module)
    with_paths(project)
    assert project.run().returncode == EXIT_OK  # a first run: last_run_date appears
    env = actions_env(tmp_path)
    result = project.run(env=env)
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    outputs = parse_file_command(Path(env["GITHUB_OUTPUT"]).read_text())
    assert (outputs["pushed"], outputs["changed"]) == ("true", changed)


def test_a_bad_limit_is_one_line_and_exit_2(project: Project) -> None:
    project.module("1.a.py", "print('x')\n")
    project.config(git={"max_file_mb": 0})
    result = project.run()
    assert result.returncode == EXIT_USAGE
    assert "git.max_file_mb: must be a number of megabytes above 0" in result.stderr
    assert json.dumps(project.read_config())  # untouched, still loads
