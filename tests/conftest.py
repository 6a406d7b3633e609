"""Shared fixtures: an isolated home and git config, and throw-away projects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
ORCHESTRATOR = REPO / "orchestrator.py"

# Variables of the machine running the tests that would change what a run does.
LEAKY_VARIABLES = ("GITHUB_", "PIPELINE_", "RUNNER_", "GIT_")


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
