"""The package: a wheel built from this repository's files, installed into a fresh
virtual environment without the network, runs as `gitcron` and `python -m gitcron`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import loguru
import pytest
from conftest import REPO

import gitcron

# The files a wheel is built from; never the checkout's mutable state.
BUILD_FILES = ("pyproject.toml", "README.md", "gitcron")


def tracked(*paths: str) -> list[str]:
    out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others",
                          "--exclude-standard", "--", *paths],
                         check=True, capture_output=True, text=True).stdout
    return [name for name in out.split("\0") if name]


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of the tracked files, built offline with flit_core (no build folder
    is left anywhere near the checkout)."""
    source = tmp_path_factory.mktemp("source")
    for name in tracked(*BUILD_FILES):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-c", "import sys, flit_core.buildapi as b; "
                    "print(b.build_wheel(sys.argv[1]))", str(dist)],
                   cwd=source, check=True, capture_output=True, text=True, timeout=120)
    (built,) = dist.glob("gitcron-*.whl")
    return built


def fresh_venv(where: Path) -> Path:
    """A virtual environment whose only extra is a path to the runtime dependencies
    already installed here: what `pip install --no-index --find-links` needs."""
    venv.create(where, with_pip=False)
    python = where / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path("
                           "'purelib'))"], check=True, capture_output=True, text=True)
    deps = Path(loguru.__file__).resolve().parent.parent
    Path(site.stdout.strip(), "deps.pth").write_text(f"{deps}\n")
    return python


def pip_install(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                           "--no-index", "--disable-pip-version-check", "--quiet", *args],
                          capture_output=True, text=True, timeout=120)


def test_the_wheel_holds_the_package_its_version_and_the_gitcron_command(wheel: Path) -> None:
    assert wheel.name == f"gitcron-{gitcron.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = f"gitcron-{gitcron.__version__}.dist-info"
        metadata = archive.read(f"{info}/METADATA").decode()
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert {f"gitcron/{name}" for name in ("__init__.py", "__main__.py", "cli.py")} <= set(names)
    assert not any(name.startswith(("tests/", "modules/", "orchestrator.py")) for name in names)
    assert "gitcron=gitcron.__main__:main" in entry_points.replace(" ", "")
    assert "Requires-Python: >=3.11" in metadata
    requires = {line.split(": ", 1)[1] for line in metadata.splitlines()
                if line.startswith("Requires-Dist: ")}
    assert requires == pinned_requirements()


def pinned_requirements() -> set[str]:
    """requirements.txt's pins."""
    lines = (REPO / "requirements.txt").read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def test_pyproject_reads_the_version_from_its_one_home() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "version" in project["dynamic"] and "version" not in project
    assert set(project["dependencies"]) == pinned_requirements()
    assert project["scripts"] == {"gitcron": "gitcron.__main__:main"}


def test_the_installed_command_and_module_run_a_pipeline(wheel: Path, tmp_path: Path) -> None:
    python = fresh_venv(tmp_path / "venv")
    installed = pip_install(python, "--no-deps", str(wheel))
    assert installed.returncode == 0, installed.stderr
    command = tmp_path / "venv" / "bin" / "gitcron"
    version = subprocess.run([str(command), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and gitcron.__version__ in version.stdout
    project = tmp_path / "a project"
    (project / "modules").mkdir(parents=True)
    (project / "modules" / "1.hello.py").write_text("print('hello from the module')\n")
    (project / "config.json").write_text('{"timezone": "UTC"}\n')
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for argv in ([str(command)], [str(command), "run"], [str(python), "-m", "gitcron"]):
        run = subprocess.run([*argv, "--no-push"], cwd=project, env=env, capture_output=True,
                             text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert run.returncode == 0, (argv, run.stderr)
        assert "hello from the module" in run.stderr + run.stdout
    where = subprocess.run([str(python), "-c", "import gitcron; print(gitcron.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(tmp_path / "venv"))
    history = subprocess.run([str(command), "history", "--json"], cwd=project, env=env,
                             capture_output=True, text=True, timeout=60)
    assert history.returncode == 0 and len(history.stdout.splitlines()) == 3


def test_init_from_the_wheel_sets_up_a_repository_that_installs_offline_and_pushes(
        wheel: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    tool = fresh_venv(tmp_path / "tool")
    assert pip_install(tool, "--no-deps", str(wheel)).returncode == 0
    repo = tmp_path / "my repo"
    init = subprocess.run([str(tmp_path / "tool" / "bin" / "gitcron"), "init", str(repo)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert init.returncode == 0, init.stderr
    written = sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file())
    assert "orchestrator.py" in written and not any("gitcron" in name for name in written)
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "Set up the pipeline")
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "-u", "origin", "main")
    # The user's own environment, from requirements.txt's pin, offline.
    user = fresh_venv(repo / ".venv")
    installed = pip_install(user, "--find-links", str(wheel.parent), "-r",
                            str(repo / "requirements.txt"))
    assert installed.returncode == 0, installed.stderr
    run = subprocess.run([str(user), "orchestrator.py", "--push"], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr
    assert git(repo, "status", "--porcelain") == ""
    where = subprocess.run([str(user), "-c", "import gitcron; print(gitcron.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(repo / ".venv"))
    pushed = git(bare, "log", "-1", "--format=%s", "main")
    assert pushed.startswith("pipeline: success run ")
    files = git(bare, "show", "--name-only", "--format=", "main").splitlines()
    assert "config.json" in files and any(name.endswith(".log") for name in files)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout
