"""Shared fixtures: an isolated home and git config, and throw-away projects."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import timezone
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
ORCHESTRATOR = REPO / "orchestrator.py"



def committed(name: str) -> bytes:
    """A file of this repository as committed, never the checkout's own copy: a run
    in this checkout writes last_run_date into config.json and logs under
    `data and logs/`, and a test must not depend on what the last run left."""
    return subprocess.run(["git", "-C", str(REPO), "show", f"HEAD:{name}"], check=True,
                          capture_output=True, stdin=subprocess.DEVNULL).stdout


# Variables of the machine running the tests that would change what a run does.
LEAKY_VARIABLES = ("GITHUB_", "PIPELINE_", "RUNNER_", "GIT_")


@pytest.fixture(autouse=True)
def own_signal_handlers() -> Iterator[None]:
    """A run called in-process ignores SIGINT and SIGTERM once it is over (as a
    process it is about to exit); the test process gets its own handlers back, and
    the processes it starts do not inherit an ignored SIGINT."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.fixture(autouse=True)
def isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test out of the real repository, $HOME and git config."""
    home = tmp_path_factory.mktemp("home")
    for name in list(os.environ):
        if name.startswith(LEAKY_VARIABLES) or any(
            marker in name.upper() for marker in ("TOKEN", "SECRET", "PASSWORD")
        ):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "0")
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Test User\n\temail = test@example.com\n"
        "[init]\n\tdefaultBranch = main\n"
    )


class Project:
    """A project folder (its path holds a space) with modules and a config."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "modules").mkdir(parents=True, exist_ok=True)

    @property
    def config_path(self) -> Path:
        return self.root / "config.json"

    @property
    def log_dir(self) -> Path:
        return self.root / "data and logs"

    def module(self, name: str, code: str = "", mode: int | None = None) -> Path:
        path = self.root / "modules" / name
        path.write_text(textwrap.dedent(code).lstrip())
        if mode is not None:
            path.chmod(mode)
        return path

    def config(self, data: dict[str, Any] | None = None, **keys: Any) -> dict[str, Any]:
        data = dict(data or {}, **keys)
        self.config_path.write_text(json.dumps(data, indent=2) + "\n")
        return data

    def read_config(self) -> dict[str, Any]:
        return json.loads(self.config_path.read_text())

    def command(self, *args: str) -> list[str]:
        return [sys.executable, str(ORCHESTRATOR), "--config", str(self.config_path), *args]

    def run(self, *args: str, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args), cwd=self.root, env=dict(os.environ, **(env or {})),
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )

    def logs(self) -> list[Path]:
        return sorted(self.log_dir.glob("workflow_*.log")) if self.log_dir.exists() else []

    def records(self) -> list[dict[str, Any]]:
        if not self.log_dir.exists():
            return []
        paths = sorted(self.log_dir.glob("workflow_*.json"), key=lambda p: p.stat().st_mtime_ns)
        return [json.loads(p.read_text()) for p in paths]

    def record(self) -> dict[str, Any]:
        records = self.records()
        assert len(records) == 1, f"expected one run record, found {len(records)}"
        return records[0]

    def log_text(self) -> str:
        logs = self.logs()
        assert len(logs) == 1, f"expected one log, found {logs}"
        return logs[0].read_text()

    def statuses(self) -> dict[str, str]:
        return {m["name"]: m["status"] for m in self.record()["modules"]}


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path / "my project")


OK = "import sys\nsys.exit(0)\n"


def fail(code: int = 3, message: str = "boom") -> str:
    return f"import sys\nprint({message!r}, file=sys.stderr)\nsys.exit({code})\n"


# The shipped modules, run on their own with the environment the orchestrator gives.
SHIPPED = REPO / "modules"
RUN_ID = "20261123_06h00"
STARTED = "2026-11-23T06:00:00+00:00"


def stage_command(project: Project, name: str) -> list[str]:
    for file in (*sorted(p.name for p in SHIPPED.glob("_*.py")), name):
        (project.root / "modules" / file).write_bytes((SHIPPED / file).read_bytes())
    return [sys.executable, str(project.root / "modules" / name)]


def stage_env(project: Project, name: str, *, dry_run: bool = False, force: bool = False,
              last_run: str = "", run_id: str = RUN_ID, started: str = STARTED,
              **extra: str) -> dict[str, str]:
    """The environment the runner gives module `name` (the contract's one function),
    with its run folder made, as the runner makes it."""
    from gitcron import config as cfg
    from gitcron import contract
    from gitcron import window as windows

    tz = timezone.utc
    moment = cfg.parse_timestamp(started)
    span = windows.default(last_run or None, moment, None, tz)
    run_dir = project.log_dir.absolute() / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    ctx = contract.RunContext(
        run_id=run_id, config_path=project.config_path, log_dir=project.log_dir, root=project.root,
        tz=tz, last_run_date=last_run or None, started=moment, dry_run=dry_run, force=force,
        window_start=span.start, window_end=span.end, run_dir=run_dir)
    path = project.root / "modules" / name
    spec = cfg.ModuleSpec(path=path, rel=f"modules/{name}", name=Path(name).stem, command=())
    base = dict(os.environ, no_proxy="127.0.0.1", NO_PROXY="127.0.0.1")
    return dict(contract.module_env(base, ctx, spec), **extra)


def run_stage(project: Project, name: str, **options: Any) -> subprocess.CompletedProcess[str]:
    """Run a shipped module (copied into `project`) as the orchestrator would."""
    return subprocess.run(stage_command(project, name), cwd=project.root,
                          env=stage_env(project, name, **options), capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def load_stage(name: str) -> Any:
    """Import a shipped module, to test its functions one by one."""
    import importlib.util

    sys.path.insert(0, str(SHIPPED))
    try:
        key = "shipped_" + Path(name).stem.split(".", 1)[1]
        spec = importlib.util.spec_from_file_location(key, SHIPPED / name)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(SHIPPED))
