"""The sequence of a run: plan in, outcomes -> statuses -> run record -> state.

Calls execute for each module, logs for the run's log, and writes the run
record and `last_run_date`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal

from loguru import logger

from pipeline import config as cfg
from pipeline import execute, github, logs
from pipeline.codes import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PUSH,
    MODULE_OK,
    MODULE_SKIP,
    FatalError,
)
from pipeline.config import Config, ModuleSpec
from pipeline.execute import Cancel, Outcome, RunContext
from pipeline.plan import Plan

ModuleStatus = Literal["success", "skipped", "failed", "not_run"]
RunStatus = Literal["success", "partial", "failed", "interrupted"]
EXIT_CODES: dict[RunStatus, int] = {
    "success": EXIT_OK,
    "partial": EXIT_OK,
    "failed": EXIT_FAILED,
    "interrupted": EXIT_INTERRUPTED,
}


@dataclass(frozen=True)
class Options:
    dry_run: bool = False
    force: bool = False
    verbose: bool = False
    push: bool | None = None  # --push / --no-push; None: as git.push says


@dataclass(frozen=True)
class ModuleResult:
    spec: ModuleSpec
    status: ModuleStatus
    attempts: int = 0
    first: Outcome | None = None  # the first attempt: when the module started
    last: Outcome | None = None  # the last attempt: how it ended

    def as_record(self) -> dict[str, Any]:
        last, first = self.last, self.first
        return {
            "name": self.spec.name,
            "path": self.spec.rel,
            "status": self.status,
            "exit_code": last.exit_code if last else None,
            "attempts": self.attempts,
            "timed_out": last.timed_out if last else False,
            "started": _iso(first.started) if first else None,
            "finished": _iso(last.finished) if last else None,
            "duration_seconds": _duration(first, last),
            "peak_rss_mb": last.peak_rss_mb if last else None,
        }


@dataclass
class RunResult:
    run_id: str
    status: RunStatus
    started: datetime
    log_path: Path
    record_path: Path
    modules: list[ModuleResult] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)
    push_failed: bool = False

    @property
    def exit_code(self) -> int:
        code = EXIT_CODES[self.status]
        return EXIT_PUSH if self.push_failed and code == EXIT_OK else code


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def _duration(first: Outcome | None, last: Outcome | None) -> float | None:
    if first is None or last is None:
        return None
    return round((last.finished - first.started).total_seconds(), 3)


def status_of(outcome: Outcome) -> ModuleStatus:
    if outcome.interrupted or outcome.timed_out or outcome.write_error:
        return "failed"
    if outcome.exit_code == MODULE_OK:
        return "success"
    return "skipped" if outcome.exit_code == MODULE_SKIP else "failed"


def run_status(results: list[ModuleResult], interrupted: bool) -> RunStatus:
    if interrupted:
        return "interrupted"
    failed = [r for r in results if r.status == "failed"]
    if any(r.spec.critical for r in failed):
        return "failed"
    return "partial" if failed else "success"


def start(config: Config, plan: Plan, options: Options, env: Mapping[str, str]) -> RunResult:
    """Run the plan; write the log, the run record and (after success) the state."""
    started = datetime.now(config.tz)
    masker = logs.Masker(logs.secret_values(env, config.mask_env))
    actions = github.Actions(env, masker)
    with Cancel() as cancel, logs.RunLog(config.tz, masker, verbose=options.verbose) as runlog:
        run_id, log_path, handle = _create_log(config, started)
        runlog.attach_file(handle)
        ctx = RunContext(
            run_id=run_id, config_path=config.path, log_dir=config.log_dir.absolute(),
            root=config.root, tz=config.tz, last_run_date=config.last_run_date,
            started=started, dry_run=options.dry_run, force=options.force,
        )
        record_path = config.log_dir / f"workflow_{run_id}.json"
        result = RunResult(run_id, "failed", started, log_path, record_path)
        _announce(config, plan, ctx, log_path)
        try:
            result.modules = _run_modules(plan, ctx, env, runlog, cancel, actions)
            result.status = run_status(result.modules, cancel.requested)
            if runlog.write_error:  # the log is incomplete: the run cannot count as done
                result.status = "failed"
        except Exception:
            logger.exception("the orchestrator failed unexpectedly; the run is recorded as failed")
            result.status = "failed"
        try:
            result.record = _finish(config, result, options, env, masker)
        except Exception:
            logger.exception(f"could not write the run record {result.record_path}")
            result.status = "failed"
        commit = None
        if config.git.wanted(options.push, options.dry_run, env):
            logger.info("committing the run back (log, record, config) and pushing it")
            runlog.close_file()  # the committed log is complete; what follows is console only
            commit = _commit_back(config, result, env, masker)
            result.push_failed = commit is None
        _tell_actions(actions, result, commit)
    return result


def _tell_actions(actions: github.Actions, result: RunResult, commit: str | None) -> None:
    if not actions.enabled or not result.record:
        return
    actions.annotate([
        github.Failure(r.spec.name, r.spec.critical,
                       "interrupted" if r.last.interrupted else r.last.describe(),
                       r.last.stderr_tail[-1] if r.last.stderr_tail else "")
        for r in result.modules if r.status == "failed" and r.last is not None
    ])
    log_file = result.record["log_file"]
    actions.summary(result.record, actions.log_link(commit, log_file))
    actions.outputs({"status": result.status, "run_id": result.run_id, "log_file": log_file,
                     "record_file": log_file.removesuffix(".log") + ".json"})


def _commit_back(config: Config, result: RunResult, env: Mapping[str, str],
                 masker: logs.Masker) -> str | None:
    """The pushed commit, or None when committing or pushing failed (logged)."""
    from pipeline import gitsync  # GitPython is imported only when a run pushes

    request = gitsync.Request(
        root=config.root, log=result.log_path, record=result.record_path, config=config.path,
        extra=config.git.paths, settings=config.git, run_id=result.run_id, status=result.status,
        env=env, rename_record=renamed_record,
    )
    try:
        pushed = gitsync.commit_and_push(request, masker)
    except gitsync.PushError as exc:
        logger.error(masker(str(exc)))
        return None
    except Exception:
        logger.exception("committing the run back failed unexpectedly; its files are on disk")
        return None
    if pushed.renamed_to:
        logger.warning(f"a concurrent run had taken run id {result.run_id}: this run was "
                       f"committed as {pushed.renamed_to}")
    if not pushed.local_updated:
        logger.warning("pushed, but the checkout was left at the local commit: local edits "
                       "stand in the way; run `git pull --rebase` to catch up")
    logger.info(f"pushed {pushed.commit[:7]} to {pushed.target} ({pushed.branch}) "
                f"in {pushed.attempts} attempt{'s' if pushed.attempts > 1 else ''}")
    return pushed.commit


def renamed_record(content: bytes, run_id: str, log_file: str) -> bytes:
    """A run record under a new run id (a concurrent run pushed the same one first)."""
    record = json.loads(content)
    record["run_id"], record["log_file"] = run_id, log_file
    return (json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode()


def _create_log(config: Config, started: datetime) -> tuple[str, Path, Any]:
    try:
        return logs.create_log(config.log_dir, started.strftime("%Y%m%d_%Hh%M"))
    except OSError as exc:
        raise FatalError(f"{config.display}: log_dir: cannot create a log in {config.log_dir}: "
                         f"{exc.strerror or exc}") from None


def _announce(config: Config, plan: Plan, ctx: RunContext, log_path: Path) -> None:
    names = ", ".join(spec.name for spec in plan.modules)
    flags = "".join((" (dry run)" if ctx.dry_run else "", " (force)" if ctx.force else ""))
    logger.info(f"run {ctx.run_id} started{flags}: {len(plan.modules)} modules: {names}")
    logger.debug(f"config {config.path}; log {log_path}")
    for name in plan.ignored:
        logger.debug(f"modules/{name}: ignored (no number followed by '.', '_' or '-')")


def _run_modules(
    plan: Plan, ctx: RunContext, env: Mapping[str, str], runlog: logs.RunLog, cancel: Cancel,
    actions: github.Actions,
) -> list[ModuleResult]:
    results: list[ModuleResult] = []
    stopped = False
    for position, spec in enumerate(plan.modules, 1):
        if stopped or cancel.requested:
            results.append(ModuleResult(spec, "not_run"))
            continue
        where = f"[{position}/{len(plan.modules)}]"
        actions.start_group(f"{where} {spec.name}")
        try:
            logger.bind(module=spec.name).info(f"{where} starting {spec.rel}")
            result = _run_one(spec, ctx, env, runlog, cancel)
            _report(result)
        finally:
            actions.end_group()
        results.append(result)
        stopped = (result.status == "failed" and spec.critical) or bool(runlog.write_error)
    return results


def _run_one(
    spec: ModuleSpec, ctx: RunContext, env: Mapping[str, str], runlog: logs.RunLog, cancel: Cancel
) -> ModuleResult:
    """All attempts at one module: a failure is retried, a skip or an interruption never."""
    log = logger.bind(module=spec.name)
    module_env = execute.module_env(env, ctx, spec)
    output = partial(runlog.output, spec.name)
    first = outcome = execute.run_module(spec, ctx, module_env, output, cancel)
    attempts = 1
    while (status_of(outcome) == "failed" and attempts <= spec.retries
           and not outcome.interrupted and not outcome.write_error):
        delay = spec.retry_delay_seconds
        log.warning(f"attempt {attempts} failed ({outcome.describe()}); retrying in {delay:g} s")
        if cancel.wait(delay):
            break
        outcome = execute.run_module(spec, ctx, module_env, output, cancel)
        attempts += 1
    status = "failed" if cancel.requested else status_of(outcome)
    return ModuleResult(spec, status, attempts, first, outcome)


def _report(result: ModuleResult) -> None:
    log = logger.bind(module=result.spec.name)
    outcome = result.last
    assert outcome is not None
    took = f"{_duration(result.first, outcome):.1f} s"
    if outcome.stray_processes:
        log.warning("the module left processes running; they were killed")
    if result.status == "success":
        log.info(f"succeeded in {took}")
    elif result.status == "skipped":
        log.info(f"skipped (exit code {MODULE_SKIP}: conditions not met) after {took}")
    else:
        _report_failure(result, outcome, took)


def _report_failure(result: ModuleResult, outcome: Outcome, took: str) -> None:
    log = logger.bind(module=result.spec.name)
    kind = "critical" if result.spec.critical else "non-critical"
    why = "interrupted" if outcome.interrupted else outcome.describe()
    tries = f"{result.attempts} attempt{'s' if result.attempts > 1 else ''}"
    log.error(f"failed ({kind}): {why}, after {tries} in {took}")
    if outcome.stderr_tail:
        log.error("last lines of stderr:\n" + "\n".join(outcome.stderr_tail))


def _finish(
    config: Config, result: RunResult, options: Options, env: Mapping[str, str],
    masker: logs.Masker,
) -> dict[str, Any]:
    record = _mask(_record(config, result, options, env), masker)
    cfg.write_atomic(result.record_path, json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    if result.status in ("success", "partial") and not options.dry_run:
        _store_last_run_date(config, result.started)
    _farewell(result, record)
    return record


def _record(
    config: Config, result: RunResult, options: Options, env: Mapping[str, str]
) -> dict[str, Any]:
    finished = datetime.now(config.tz)
    return {
        "run_id": result.run_id,
        "status": result.status,
        "started": _iso(result.started),
        "finished": _iso(finished),
        "duration_seconds": round((finished - result.started).total_seconds(), 3),
        "dry_run": options.dry_run,
        "trigger": env.get("GITHUB_EVENT_NAME") or "local",
        "last_run_date_before": config.last_run_date,
        "log_file": _relative(result.log_path, config.root),
        "modules": [m.as_record() for m in result.modules],
    }


def _relative(path: Path, root: Path) -> str:
    try:
        return path.absolute().relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _mask(value: Any, masker: logs.Masker) -> Any:
    if isinstance(value, str):
        return masker(value)
    if isinstance(value, dict):
        return {key: _mask(item, masker) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask(item, masker) for item in value]
    return value


def _store_last_run_date(config: Config, started: datetime) -> None:
    """The run's start, written into the file as it is now: a module may have
    changed its own settings in it during the run."""
    try:
        cfg.set_key(config, "last_run_date", started.isoformat(timespec="seconds"))
    except (OSError, FatalError) as exc:
        logger.error(f"{config.display}: last_run_date not stored: {exc}")


def _farewell(result: RunResult, record: dict[str, Any]) -> None:
    counts = {s: sum(m["status"] == s for m in record["modules"]) for s in
              ("success", "skipped", "failed", "not_run")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    line = f"run {result.run_id} {result.status} in {record['duration_seconds']:.1f} s: {summary}"
    if result.status == "success":
        logger.info(line)
    elif result.status == "partial":
        logger.warning(line + " (a non-critical module failed)")
    else:
        logger.error(line)
