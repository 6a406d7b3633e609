"""The module contract: the environment a module gets (docs/modules.md).

One function builds it, and every engine calls it: the local runner
(execute.py, run.py), the task command that Airflow's tasks run (task.py) and
the tests of the shipped modules. A variable added here reaches all three.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from pathlib import Path
from typing import NamedTuple

from gitcron.config import ModuleSpec

# The orchestrator pushes with these; a module gets write access to the
# repository only when its entry asks ("github_token": true).
GITHUB_TOKENS = ("GITHUB_TOKEN", "GH_TOKEN")


class RunContext(NamedTuple):
    """What every module of a run is told through its environment."""

    run_id: str
    config_path: Path
    log_dir: Path
    root: Path
    tz: tzinfo
    last_run_date: str | None
    started: datetime
    dry_run: bool = False
    force: bool = False
    window_start: datetime | None = None
    window_end: datetime | None = None
    run_dir: Path | None = None
    # Descriptors every module inherits: the checkout's run lock, so that a module
    # outliving a killed orchestrator keeps the next run out until it ends.
    keep_fds: tuple[int, ...] = ()


def module_env(base: Mapping[str, str], ctx: RunContext, spec: ModuleSpec) -> dict[str, str]:
    """`base` (the runner's environment, after `.env`) plus the PIPELINE_* variables."""
    env = dict(
        base,
        PIPELINE_RUN_ID=ctx.run_id,
        PIPELINE_CONFIG=str(ctx.config_path),
        PIPELINE_LOG_DIR=str(ctx.log_dir),
        PIPELINE_MODULE=spec.name,
        PIPELINE_LAST_RUN_DATE=ctx.last_run_date or "",
        PIPELINE_RUN_STARTED=iso(ctx.started),
        PIPELINE_DRY_RUN="1" if ctx.dry_run else "0",
        PIPELINE_FORCE="1" if ctx.force else "0",
        PIPELINE_WINDOW_START=iso(ctx.window_start),
        PIPELINE_WINDOW_END=iso(ctx.window_end or ctx.started),
        PIPELINE_RUN_DIR=str(ctx.run_dir or ""),
    )
    if not spec.github_token:
        for name in GITHUB_TOKENS:
            env.pop(name, None)
    if spec.unbuffered:
        # Python block-buffers a pipe: its lines would reach the log in bursts, and
        # out of order between stdout and stderr. A chatty module may opt out.
        env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def recovery_env(base: Mapping[str, str], ctx: RunContext, module: ModuleSpec,
                 failed_exit_code: str) -> dict[str, str]:
    """A recovery script's: its module's environment (PIPELINE_MODULE is the module
    it recovers), plus which module failed and how."""
    assert module.on_failure is not None
    return dict(module_env(base, ctx, module.on_failure), PIPELINE_MODULE=module.name,
                PIPELINE_FAILED_MODULE=module.name, PIPELINE_FAILED_EXIT_CODE=failed_exit_code)


def iso(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else ""
