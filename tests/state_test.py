"""What a run does to its state: last_run_date, --resume, the record's selection,
and a config a module broke. Real runs as processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import OK, ORCHESTRATOR, REPO, Project, fail

from gitcron.codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE

BEFORE = "2026-01-01T00:00:00+00:00"


@pytest.fixture
def three(project: Project) -> Project:
    project.module("1.a.py", OK)
    project.module("2.b.py", "import os, sys\nsys.exit(3 if os.path.exists('break-b') else 0)\n")
    project.module("3.c.py", OK)
    project.config(last_run_date=BEFORE)
    return project


@pytest.mark.parametrize("args", [("--only", "a"), ("--skip", "c"), ("--from", "b")])
def test_a_narrowed_run_leaves_last_run_date_alone(three: Project, args: tuple[str, ...]) -> None:
    result = three.run(*args)
    assert result.returncode == EXIT_OK
    assert three.read_config()["last_run_date"] == BEFORE
    record = three.record()
    assert record["status"] == "success"
    assert record["selection"]["resume_of"] is None
    assert "narrowed run" in three.log_text()


def test_the_record_says_what_was_selected(three: Project) -> None:
    three.run("--only", "a,3", "--skip", "c", "--force")
    assert three.record()["selection"] == {"only": ["a", "3"], "from": None, "skip": ["c"],
                                           "resume_of": None}
    assert three.record()["force"] is True


def test_a_whole_run_moves_last_run_date_to_its_start(three: Project) -> None:
    assert three.run().returncode == EXIT_OK
    record = three.record()
    assert record["selection"] is None and record["backfill"] is False
    assert three.read_config()["last_run_date"] == record["started"][:19] + "+00:00"


def test_a_completed_resume_sets_the_start_of_the_run_it_resumed(three: Project) -> None:
    (three.root / "break-b").touch()
    assert three.run().returncode == EXIT_FAILED
    first = three.record()
    assert three.run("--resume").returncode == EXIT_FAILED  # still broken: a chain
    (three.root / "break-b").unlink()
    assert three.run("--dry-run", "--only", "1").returncode == EXIT_OK  # does not count
    assert three.run("--resume").returncode == EXIT_OK
    records = sorted(three.records(), key=lambda r: r["run_id"])
    assert [r["status"] for r in records] == ["failed", "failed", "success", "success"]
    second, last = records[1], records[-1]
    assert second["selection"]["resume_of"] == first["run_id"]
    assert last["selection"]["resume_of"] == second["run_id"]
    assert [m["name"] for m in last["modules"]] == ["2.b", "3.c"]
    assert last["window"] == first["window"]  # the modules still to run see the same window
    assert three.read_config()["last_run_date"] == first["started"][:19] + "+00:00"


def test_resume_looks_past_dry_runs_and_backfills(three: Project) -> None:
    (three.root / "break-b").touch()
    three.run()
    three.run("--dry-run")
    three.run("--since", "2026-01-01", "--until", "2026-01-02")
    (three.root / "break-b").unlink()
    result = three.run("--resume")
    assert result.returncode == EXIT_OK, result.stderr
    newest = max(three.records(), key=lambda r: r["run_id"])
    assert [m["name"] for m in newest["modules"]] == ["2.b", "3.c"]


def test_a_config_a_module_broke_fails_the_run_and_is_not_trusted(three: Project) -> None:
    three.module("3.c.py", "open('config.json', 'a').write('oops')\n")
    result = three.run()
    assert result.returncode == EXIT_FAILED
    assert three.record()["status"] == "failed"
    assert "the config no longer loads after the run" in three.log_text()
    assert three.config_path.read_text().endswith("oops")  # not rewritten with a date


def test_odd_module_names_are_one_line(three: Project) -> None:
    for args, words in ((["--only", "²"], "--only: unknown module '²'"),
                        (["--only", ""], "an empty module name"),
                        (["--skip", ","], "an empty module name"),
                        (["--from", " "], "--from: an empty module name")):
        result = three.run(*args)
        assert result.returncode == EXIT_USAGE, args
        assert len(result.stderr.splitlines()) == 1 and words in result.stderr, result.stderr
    assert not three.log_dir.exists()


def test_a_file_the_config_does_not_list_is_named_as_such(project: Project) -> None:
    project.module("1.a.py", OK)
    project.module("2.extra.py", OK)
    project.config(modules=["modules/1.a.py"])
    result = project.run("--only", "extra")
    assert result.returncode == EXIT_USAGE
    assert "modules/2.extra.py is not in the pipeline" in result.stderr
    assert "does not list it" in result.stderr


def test_one_module_is_not_one_modules(project: Project) -> None:
    project.module("1.a.py", fail(2))
    project.config({})
    project.run()
    log = project.log_text()
    assert "1 module: 1.a" in log and "1 modules" not in log
    assert "(failed: 1.a)" in log.splitlines()[-1]


def test_list_into_a_closed_pipe_ends_quietly(three: Project) -> None:
    list_ = subprocess.Popen([sys.executable, str(ORCHESTRATOR), "--config",
                              str(three.config_path), "--list"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    assert list_.stdout is not None
    list_.stdout.close()  # as `| head -0` would
    assert list_.wait(timeout=30) == EXIT_OK
    assert list_.stderr is not None and list_.stderr.read() == b""


def test_the_config_is_found_beside_the_orchestrator_from_elsewhere(three: Project,
                                                                    tmp_path) -> None:
    # No config here: the one beside the orchestrator.py that was started is used.
    shutil.copy(ORCHESTRATOR, three.root / "orchestrator.py")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run([sys.executable, str(three.root / "orchestrator.py"), "--list"],
                            cwd=elsewhere, capture_output=True, text=True, timeout=30,
                            env=dict(os.environ, PYTHONPATH=str(ORCHESTRATOR.parent)))
    assert result.returncode == EXIT_OK, result.stderr
    assert "1.a" in result.stdout and "3.c" in result.stdout
    # The package's own folder is no fallback: it may be installed anywhere.
    package = subprocess.run([sys.executable, "-m", "gitcron", "--list"], cwd=elsewhere,
                             capture_output=True, text=True, timeout=30,
                             env=dict(os.environ, PYTHONPATH=str(ORCHESTRATOR.parent)))
    assert package.returncode == EXIT_USAGE
    assert "config file not found" in package.stderr


def test_two_configs_in_one_folder_are_refused(three: Project) -> None:
    (three.root / "config.yaml").write_text("timezone: UTC\n")
    result = subprocess.run([sys.executable, str(ORCHESTRATOR), "--list"], cwd=three.root,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == EXIT_USAGE
    assert "config.json and" in result.stderr and "config.yaml" in result.stderr


def test_missing_requirements_name_the_install_command(three: Project, tmp_path) -> None:
    # An interpreter that cannot import loguru: the real one with its site-packages hidden.
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "loguru.py").write_text("raise ModuleNotFoundError(\"No module named 'loguru'\", "
                                       "name='loguru')\n")
    env = {"PYTHONPATH": str(blocker)}
    result = three.run(env=env)
    assert result.returncode == EXIT_USAGE
    assert result.stderr.startswith("orchestrator: the requirements are not installed "
                                    "(no module 'loguru'): run `pip install -r ")
    assert result.stderr.endswith("requirements.txt` (" + ", ".join(
        (REPO / "requirements.txt").read_text().split()) + ")\n")
    assert json.loads(three.config_path.read_text())["last_run_date"] == BEFORE


def test_a_module_file_name_with_a_newline_stays_on_one_line(project: Project) -> None:
    name = "1.a\n::add-path::\r::set-env name=A::b.sh"
    project.module(name, "exit 0\n")
    project.config(modules=[f"modules/{name}"])
    listing = project.run("--list")
    assert listing.returncode == EXIT_OK
    assert not any(line.startswith("::") for line in listing.stdout.splitlines())
    assert "1.a\\x0a::add-path::\\x0d::set-env" in listing.stdout
    error = project.run("--only", "nosuch")
    assert error.returncode == EXIT_USAGE and len(error.stderr.splitlines()) == 1
