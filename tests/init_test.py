"""`init [DIR]`: a new repository that runs, commits cleanly, and nothing overwritten."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ORCHESTRATOR, REPO

from gitcron import scaffold
from gitcron.codes import FatalError


def init(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ORCHESTRATOR), "init", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


def listing(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and ".git" not in p.parts}


def test_init_into_an_empty_folder_runs_and_commits_cleanly(tmp_path: Path) -> None:
    target = tmp_path / "new repo"
    result = init(str(target), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Next steps:" in result.stdout and "Settings > Secrets and variables > Actions" \
        in result.stdout
    written = listing(target)
    assert written[".github/workflows/pipeline.yml"] == \
        (REPO / ".github/workflows/pipeline.yml").read_bytes()
    assert written[".github/workflows/health.yml"] == \
        (REPO / ".github/workflows/health.yml").read_bytes()
    assert written["requirements.txt"] == (REPO / "requirements.txt").read_bytes()
    assert written["gitcron/cli.py"] == (REPO / "gitcron/cli.py").read_bytes()
    assert json.loads(written["config.json"])["modules"][0]["path"] == "modules/1.example.py"
    git(target, "init", "-q")
    git(target, "add", "-A")
    git(target, "commit", "-qm", "set up")
    (target / ".env").write_text("SECRET_TOKEN=abcdef\n")
    (target / ".venv" / "bin").mkdir(parents=True)
    (target / ".venv" / "bin" / "python").write_text("")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    run = subprocess.run([sys.executable, "orchestrator.py", "--no-push"], cwd=target, env=env,
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr
    assert "handling data from the beginning until " in run.stderr + run.stdout
    assert list((target / "gitcron" / "__pycache__").iterdir())  # made, and ignored
    changed = git(target, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert changed[0] == " M config.json"
    assert {line[:3] for line in changed[1:]} == {"?? "}
    assert all(line.startswith('?? "data and logs/') for line in changed[1:]), changed
    assert any(line.endswith('/example.txt"') for line in changed[1:])  # the run's own folder


def test_the_example_module_honours_a_dry_run_and_an_empty_window(tmp_path: Path) -> None:
    module = tmp_path / "1.example.py"
    module.write_text(scaffold.EXAMPLE)
    (tmp_path / "run").mkdir()
    base = dict(os.environ, PIPELINE_WINDOW_START="2026-11-23T05:00:00+00:00",
                PIPELINE_WINDOW_END="2026-11-23T06:00:00+00:00",
                PIPELINE_RUN_DIR=str(tmp_path / "run"))
    dry = subprocess.run([sys.executable, str(module)], env=dict(base, PIPELINE_DRY_RUN="1"),
                         capture_output=True, text=True)
    assert dry.returncode == 0 and "dry run: nothing written" in dry.stdout
    assert not list((tmp_path / "run").iterdir())
    real = subprocess.run([sys.executable, str(module)], env=base, capture_output=True,
                          text=True)
    assert real.returncode == 0
    assert (tmp_path / "run" / "example.txt").read_text() == \
        "window 2026-11-23T05:00:00+00:00 .. 2026-11-23T06:00:00+00:00\n"
    empty = subprocess.run([sys.executable, str(module)], capture_output=True, text=True,
                           env=dict(base, PIPELINE_WINDOW_END=base["PIPELINE_WINDOW_START"]))
    assert empty.returncode == 10


def test_init_over_a_config_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"mine": true}\n')
    (tmp_path / "modules").mkdir()
    before = listing(tmp_path)
    result = init(cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "orchestrator: config.json already exists; init wrote nothing\n"
    assert listing(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "modules"]


def test_init_names_the_first_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / ".github").write_text("a file where a folder must go")
    with pytest.raises(FatalError, match=r"\.github is in the way: it is not a folder"):
        scaffold.init_main([str(tmp_path)])
    (tmp_path / ".github").unlink()
    (tmp_path / "gitcron").mkdir()
    (tmp_path / "gitcron" / "run.py").symlink_to("nowhere")  # a dangling link counts too
    with pytest.raises(FatalError, match=r"gitcron/run.py already exists"):
        scaffold.init_main([str(tmp_path)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gitcron"]


def test_init_of_a_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(FatalError, match="exists and is not a folder"):
        scaffold.init_main([str(tmp_path / "f")])


def test_init_into_a_repository_with_history_keeps_it(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "README.md").write_text("# mine\n")
    git(tmp_path, "add", "README.md")
    git(tmp_path, "commit", "-qm", "first")
    head = git(tmp_path, "rev-parse", "HEAD")
    assert init(cwd=tmp_path).returncode == 0
    assert git(tmp_path, "rev-parse", "HEAD") == head
    assert (tmp_path / "README.md").read_text() == "# mine\n"
    untracked = git(tmp_path, "status", "--porcelain").splitlines()
    assert sorted(untracked) == ["?? .github/", "?? .gitignore", "?? config.json", "?? gitcron/", "?? modules/",
                                 "?? orchestrator.py", "?? requirements.txt"]


def test_init_keeps_a_repositorys_own_gitignore_and_adds_what_it_lacks(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("node_modules/\n.env\n")
    result = init(cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / ".gitignore").read_text()
    assert text.startswith("node_modules/\n.env\n")  # what was there stays, first
    assert text.count(".env") == 1 and ".venv/" in text and "__pycache__/" in text
    assert ".gitignore: added .venv/" in result.stdout


def test_init_into_a_path_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    for where in ("/proc/no-such/x", "/dev/null/x"):
        result = init(where, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


def test_the_next_steps_commit_the_set_up_and_not_the_rehearsal(tmp_path: Path) -> None:
    target = tmp_path / "repo"
    result = init(str(target), cwd=tmp_path)
    assert "orchestrator.py --dry-run" in result.stdout
    add = next(line for line in result.stdout.splitlines() if "git add" in line)
    paths = add.split("git add", 1)[1].split()
    git(target, "init", "-q")
    rehearsal = subprocess.run([sys.executable, "orchestrator.py", "--dry-run"], cwd=target,
                               capture_output=True, text=True, timeout=60)
    assert rehearsal.returncode == 0, rehearsal.stderr
    git(target, "add", *paths)
    git(target, "commit", "-qm", "Set up the pipeline")
    committed = git(target, "ls-files")
    assert "config.json" in committed and "gitcron/run.py" in committed
    assert "data and logs" not in committed and ".venv" not in committed
