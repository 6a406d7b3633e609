"""`init [DIR]`: a new repository that runs, commits cleanly, and nothing overwritten."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ORCHESTRATOR, REPO, committed

import gitcron
from gitcron import scaffold
from gitcron.codes import FatalError
from gitcron.history import workflow_crons


def init(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ORCHESTRATOR), "init", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


def listing(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and ".git" not in p.parts}


WRITTEN = [".github/workflows/health.yml", ".github/workflows/pipeline.yml", ".gitignore",
           "config.json", "modules/1.example.py", "modules/2.example.sh", "orchestrator.py",
           "requirements.txt"]


def runner_env() -> dict[str, str]:
    """The runner importable as if installed (tests/package_test.py installs the wheel)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return dict(env, PYTHONPATH=str(REPO))


def test_init_writes_only_the_users_files_and_they_run(tmp_path: Path) -> None:
    target = tmp_path / "new repo"
    result = init(str(target), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Next steps:" in result.stdout and "Settings > Secrets and variables > Actions" \
        in result.stdout
    written = listing(target)
    assert sorted(written) == WRITTEN  # none of the runner's own code
    assert written["orchestrator.py"] == (REPO / "orchestrator.py").read_bytes()
    assert written["requirements.txt"].decode().splitlines()[-1] == \
        f"gitcron=={gitcron.__version__}"
    config = json.loads(written["config.json"])
    assert [m["path"] for m in config["modules"]] == ["modules/1.example.py",
                                                       "modules/2.example.sh"]
    assert config["schedule"] == "17 6 * * *"
    assert workflow_crons(target / ".github/workflows/pipeline.yml") == ["17 6 * * *"]
    assert config["log_layout"] == "daily"
    git(target, "init", "-q")
    git(target, "add", "-A")
    git(target, "commit", "-qm", "set up")
    (target / ".env").write_text("SECRET_TOKEN=abcdef\n")
    (target / ".venv" / "bin").mkdir(parents=True)
    (target / ".venv" / "bin" / "python").write_text("")
    run = subprocess.run([sys.executable, "orchestrator.py", "--no-push"], cwd=target,
                         env=runner_env(), capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr
    output = run.stderr + run.stdout
    assert "handling data from the beginning until " in output
    assert "MB free under" in output  # the shell example ran too
    changed = git(target, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert changed[0] == " M config.json"
    assert {line[:3] for line in changed[1:]} == {"?? "}
    assert all(line.startswith('?? "data and logs/') for line in changed[1:]), changed
    assert any(line.endswith('/example.txt"') for line in changed[1:])  # the run's own folder
    status = subprocess.run([sys.executable, "orchestrator.py", "status", "--json"], cwd=target,
                            env=runner_env(), capture_output=True, text=True, timeout=60)
    assert json.loads(status.stdout)["schedule"]["crons"] == ["17 6 * * *"]


def test_init_yaml_a_requirement_and_a_schedule(tmp_path: Path) -> None:
    spec = "gitcron @ git+https://git.example.com/team/gitcron@v1"
    result = init("--yaml", "--requirement", spec, "--schedule", "5 */3 * * 1-5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "config.json" not in listing(tmp_path)
    assert "git add .gitignore .github config.yaml modules" in result.stdout
    yaml_text = (tmp_path / "config.yaml").read_text()
    assert yaml.safe_load(yaml_text) == dict(
        json.loads(json.dumps(scaffold.CONFIG).replace("@SCHEDULE@", "5 */3 * * 1-5")))
    assert (tmp_path / "requirements.txt").read_text().splitlines()[-1] == spec
    assert workflow_crons(tmp_path / ".github/workflows/pipeline.yml") == ["5 */3 * * 1-5"]
    listed = subprocess.run([sys.executable, "orchestrator.py", "--list"], cwd=tmp_path,
                            env=runner_env(), capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "1.example" in listed.stdout and "2.example" in listed.stdout


@pytest.mark.parametrize(("args", "problem"), [
    (["--schedule", "every day"], "init --schedule: 'every day' is not a cron schedule"),
    (["--schedule", "17 6 * *"], "init --schedule: '17 6 * *' is not a cron schedule"),
    (["--requirement", " "], "init --requirement: ' ' is not one requirement line"),
])
def test_a_bad_schedule_or_requirement_writes_nothing(tmp_path: Path, args: list[str],
                                                       problem: str) -> None:
    result = init(*args, cwd=tmp_path)
    assert result.returncode == 2 and problem in result.stderr
    assert len(result.stderr.splitlines()) == 1 and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("schedule", "health"), [
    ("17 6 * * *", "32 7 * * *"),
    ("0 0 * * *", "15 1 * * *"),
    ("50 22 * * *", "50 22 * * *"),  # past midnight: the schedule's own times
    ("*/15 * * * *", "*/15 * * * *"),
    ("17 6 * * 1", "17 6 * * 1"),
])
def test_health_checks_after_the_schedule_and_its_grace(schedule: str, health: str) -> None:
    assert scaffold.health_schedule(schedule) == health


def test_this_repositorys_workflows_follow_its_config_schedule() -> None:
    schedule = json.loads(committed("config.json"))["schedule"]
    assert workflow_cron_lines(REPO / ".github/workflows/pipeline.yml") == [schedule]
    health = REPO / ".github/workflows/health.yml"
    assert workflow_cron_lines(health) == [scaffold.health_schedule(schedule)]
    assert health.read_bytes() == scaffold.planned_files(schedule=schedule)[
        ".github/workflows/health.yml"]


def workflow_cron_lines(path: Path) -> list[str]:
    data = yaml.safe_load(path.read_text())
    return [item["cron"] for item in data[True]["schedule"]]


def test_the_example_module_honours_a_dry_run_and_an_empty_window(tmp_path: Path) -> None:
    module = tmp_path / "1.example.py"
    module.write_text(scaffold.template("1.example.py"))
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
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "2.example.sh").symlink_to("nowhere")  # a dangling link counts
    with pytest.raises(FatalError, match=r"modules/2.example.sh already exists"):
        scaffold.init_main([str(tmp_path)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["modules"]
    (tmp_path / "modules" / "2.example.sh").unlink()
    (tmp_path / "config.yml").write_text("timezone: UTC\n")  # a config by another name
    with pytest.raises(FatalError, match=r"config.yml already exists"):
        scaffold.init_main([str(tmp_path)])


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
    assert sorted(untracked) == ["?? .github/", "?? .gitignore", "?? config.json", "?? modules/",
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
                               env=runner_env(), capture_output=True, text=True, timeout=60)
    assert rehearsal.returncode == 0, rehearsal.stderr
    git(target, "add", *paths)
    git(target, "commit", "-qm", "Set up the pipeline")
    tracked = git(target, "ls-files")
    assert "config.json" in tracked and "modules/2.example.sh" in tracked
    assert "data and logs" not in tracked and ".venv" not in tracked
