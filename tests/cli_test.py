from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import OK, ORCHESTRATOR, REPO, Project

from gitcron import __version__
from gitcron.cli import main
from gitcron.codes import EXIT_OK, EXIT_USAGE


def test_help_ends_with_examples() -> None:
    result = subprocess.run([sys.executable, str(ORCHESTRATOR), "--help"], capture_output=True,
                            text=True)
    assert result.returncode == 0
    for option in ("--config", "--only", "--from", "--skip", "--resume", "--dry-run", "--force",
                   "--push", "--no-push", "--list", "--since", "--until", "--every", "--window",
                   "--wait", "-v", "--version"):
        assert option in result.stdout
    for command in ("history", "status", "init"):  # each command with one example
        assert f"python orchestrator.py {command}" in result.stdout
    tail = result.stdout.rstrip().splitlines()
    assert "examples:" in tail[-12:]
    assert tail[-1].strip().startswith("python orchestrator.py --dry-run --no-push")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out.strip() == f"gitcron {__version__}"


@pytest.mark.parametrize("argv", [["--bogus"], ["--from"], ["--from", "a", "--resume"],
                                  ["--push", "--no-push"]])
def test_usage_errors_are_one_line_and_exit_2(argv: list[str],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("orchestrator.py: ") and "(see --help)" in err


def test_list_prints_the_plan_and_runs_nothing(project: Project,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    project.module("1.fetch.py", "open('ran', 'w')\n")
    project.module("2.transform.py", OK)
    project.module("0.prune.py", OK)
    project.config(modules=["modules/1.fetch.py",
                            {"path": "modules/2.transform.py", "retries": 2, "timeout_seconds": 90},
                            {"path": "modules/0.prune.py", "critical": False}])
    assert main(["--config", str(project.config_path), "--list", "--skip", "fetch"]) == EXIT_OK
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["#", "module", "critical", "timeout", "retries", "path"]
    assert out[1].split() == ["1", "2.transform", "yes", "90s", "2", "modules/2.transform.py"]
    assert out[2].split() == ["2", "0.prune", "no", "3600s", "0", "modules/0.prune.py"]
    assert out[3] == "not in this run: 1.fetch"
    assert not (project.root / "ran").exists()
    assert not project.log_dir.exists()


def test_names_may_be_given_with_commas_or_repeated(project: Project) -> None:
    for name in ("1.a.py", "2.b.py", "3.c.py"):
        project.module(name, f"open('ran-{name[2]}', 'w')\n")
    project.config({})
    code = main(["--config", str(project.config_path), "--only", "a,c", "--skip", "b",
                 "--skip", "c"])
    assert code == EXIT_OK
    assert sorted(p.name for p in project.root.glob("ran-*")) == ["ran-a"]


def test_main_runs_in_process(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project.module("1.a.py", "print('hello from a')\n")
    project.config({})
    assert main(["--config", str(project.config_path), "-v"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "| 1.a | hello from a" in out
    assert "| DEBUG    | orchestrator | config " in out
    assert project.record()["status"] == "success"


def test_a_config_error_is_one_line_without_traceback(project: Project,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    project.config_path.parent.mkdir(exist_ok=True)
    project.config_path.write_text('{"timezone": "Nowhere/Land"}')
    assert main(["--config", str(project.config_path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err == (f"orchestrator: {project.config_path}: timezone: unknown IANA time zone "
                   "'Nowhere/Land' (e.g. \"UTC\", \"Europe/Paris\")\n")


def test_a_missing_requirement_is_one_line_listing_requirements_txt(project: Project) -> None:
    """`status` with cronsim not installed (None in sys.modules: import fails as for a
    package that is absent): one line, exit 2, the list read from requirements.txt."""
    project.config({"schedule": "0 6 * * *"})
    code = ("import sys; sys.modules['cronsim'] = None\n"
            "from gitcron.cli import main\n"
            f"raise SystemExit(main(['status', '--config', {str(project.config_path)!r}]))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == EXIT_USAGE, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("orchestrator: the requirements are not installed (no module "
                           "'cronsim'): run `pip install -r ")
    pinned = [r for r in (REPO / "requirements.txt").read_text().splitlines() if r]
    assert line.endswith(f"requirements.txt` ({', '.join(pinned)})")


def test_the_python_claimed_is_the_python_ci_proves() -> None:
    """README, pyproject's requires-python, the workflow's matrix and .ci/oldest-python
    (which reads requires-python) name one oldest Python."""
    import tomllib

    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    oldest = requires.removeprefix(">=")
    assert f"Python {oldest} or newer" in (REPO / "README.md").read_text()
    matrix = re.search(r"python-version: \[(.*)\]",
                       (REPO / ".github/workflows/tests.yml").read_text()).group(1)
    versions = [v.strip(' "') for v in matrix.split(",")]
    assert versions[0] == oldest
    assert sorted(versions, key=lambda v: tuple(map(int, v.split(".")))) == versions
    assert "bash .ci/oldest-python" in (REPO / ".ci/run").read_text()
