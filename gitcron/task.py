"""A run whose modules are tasks of another engine (Airflow): its start, each
module as a task command, and its end.

`python -m gitcron task NAME --config PATH --run JSON` runs one attempt of
module NAME through the runner's own executor (execute.py): stdin /dev/null,
its own process group, this process a child subreaper, the same kill on
timeout and cleanup of leftovers, the same masking and levels, the environment
of contract.py. Its lines go to stdout (the task's log) and, in the runner's
line format, to the run's log file. Its exit code tells the engine how the
module ended: 0 success, 10 skipped, 1 failed, 130 interrupted; `--outcome FILE`
receives the attempt itself, for the run record.

The engine does what is between: order, retries (`--attempt N` of the
module's `retries` + 1), recovery (`--recover FAILURE`, a task of its own).
`begin` claims the run's id and folder; `finish` writes its record and review,
and sends its notifications, with the local runner's own functions.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from loguru import logger

from gitcron import config as cfg
from gitcron import contract, execute, logs, retry, runid
from gitcron import plan as planning
from gitcron import run as runner
from gitcron import window as windows
from gitcron.codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, MODULE_SKIP, FatalError
from gitcron.config import Config, ModuleSpec
from gitcron.contract import RunContext
from gitcron.execute import Outcome
from gitcron.window import Window

# The value of `--data-dir`, when the engine passes none: the root under which
# log_dir lives instead of the config's folder (a DAG bundle's checkout is
# replaced at every commit; the data must outlive it).
DATA_DIR_VARIABLE = "GITCRON_DATA_DIR"
TASK_EXIT_CODES = {"success": EXIT_OK, "skipped": MODULE_SKIP, "recovered": EXIT_OK}


class TaskRun(NamedTuple):
    """What every task of one run is handed: the run's identity and window."""

    run_id: str
    started: str  # ISO 8601 with offset
    last_run_date: str | None
    window_start: str | None
    window_end: str
    dry_run: bool = False
    force: bool = False
    backfill: bool = False
    log_dir: str = ""  # absolute
    trigger: str = "airflow"
    layout: runid.Layout = "flat"  # the config's log_layout
    ping_id: str | None = None  # the id the monitor's start ping carried, for its end

    def result(self) -> runner.RunResult:
        """The run as the local runner holds it (its modules and status still to come)."""
        return runner.RunResult(self.run_id, "failed", cfg.parse_timestamp(self.started),
                                self.log_path, self.record_path, self.window, self.run_dir,
                                ping_id=self.ping_id)

    def to_json(self) -> str:
        return json.dumps(self._asdict())

    @classmethod
    def from_json(cls, text: str) -> TaskRun:
        try:
            data = json.loads(text)
            return cls(**data)
        except (ValueError, TypeError) as exc:
            raise FatalError(f"--run: not a run of this runner ({exc})") from None

    @property
    def log_path(self) -> Path:
        return runid.log_path(Path(self.log_dir), self.run_id, self.layout)

    @property
    def run_dir(self) -> Path:
        return runid.run_dir(Path(self.log_dir), self.run_id, self.layout)

    @property
    def record_path(self) -> Path:
        return runid.record_path(Path(self.log_dir), self.run_id, self.layout)

    @property
    def window(self) -> Window:
        start = cfg.parse_timestamp(self.window_start) if self.window_start else None
        return Window(start, cfg.parse_timestamp(self.window_end))

    def context(self, config: Config) -> RunContext:
        return RunContext(
            run_id=self.run_id, config_path=config.path, log_dir=Path(self.log_dir),
            root=config.root, tz=config.tz, last_run_date=self.last_run_date,
            started=cfg.parse_timestamp(self.started), dry_run=self.dry_run, force=self.force,
            window_start=self.window.start, window_end=self.window.end, run_dir=self.run_dir,
        )


def under_data_dir(config: Config, data_dir: str | os.PathLike[str] | None) -> Config:
    """The config with its log_dir moved under `data_dir` (kept relative to it as it
    was to the config's folder); unchanged without one."""
    if not data_dir:
        return config
    log_dir = config.log_dir.absolute()
    try:
        relative = log_dir.relative_to(config.root)
    except ValueError:
        return config  # an absolute log_dir outside the project stays where it is
    return replace(config, log_dir=Path(data_dir).absolute() / relative)


def airflow_env(config: Config) -> dict[str, str]:
    """`airflow.env` of the config: module variable -> a value for Airflow to render."""
    return dict(config.airflow_env)


def masker_for(config: Config, env: Mapping[str, str]) -> logs.Masker:
    """The runner's masker: `mask_env`, secret-looking names, and what Airflow renders."""
    names = (*config.mask_env, *airflow_env(config))
    return logs.Masker(logs.secret_values(env, names))


def begin(config: Config, started: datetime, last_run_date: str | None, window: Window, *,
          dry_run: bool = False, force: bool = False, backfill: bool = False,
          trigger: str = "airflow") -> TaskRun:
    """Claim the run's id (runid.claim: its log, created), make its folder, write
    the run's first lines, and send the monitor's start ping."""
    log_dir = config.log_dir.absolute()
    try:
        run_id, log_path, handle = runid.claim(log_dir, runid.stub(started.astimezone(config.tz)),
                                               config.log_layout)
    except OSError as exc:
        raise FatalError(f"{config.display}: log_dir: cannot create a log in {log_dir}: "
                         f"{exc.strerror or exc}") from None
    run = TaskRun(run_id, contract.iso(started.astimezone(config.tz)), last_run_date,
                  contract.iso(window.start) or None, contract.iso(window.end), dry_run, force,
                  backfill, str(log_dir), trigger, config.log_layout)
    run.run_dir.mkdir(parents=True, exist_ok=True)
    modules = planning.build(config, planning.Selection()).modules
    with logs.RunLog(config.tz, logs.Masker()) as runlog:
        runlog.attach_file(handle)
        flags = "".join((" (dry run)" if dry_run else "", " (force)" if force else "",
                         " (backfill)" if backfill else ""))
        logger.info(f"run {run_id} started{flags}: {len(modules)} module"
                 f"{'' if len(modules) == 1 else 's'}: {', '.join(s.name for s in modules)}")
        start = windows.iso(window.start) if window.start else "the beginning"
        logger.info(f"window: {start} to {windows.iso(window.end)}")
        options = runner.Options(dry_run=dry_run, force=force)
        result = replace(run.result(), ping_id=runner.new_ping_id(config, options))
        env = cfg.load_env(config.root, os.environ)
        runner._ping(config, result, options, env, masker_for(config, env), "start")
    return run._replace(ping_id=result.ping_id)


# The task command.

def task_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gitcron task", description="Run one attempt of one module of a run whose "
        "modules are tasks of another engine (Airflow); see docs/airflow.md.")
    parser.add_argument("name", help="the module's name, as in the plan")
    parser.add_argument("--config", required=True, metavar="PATH")
    parser.add_argument("--run", required=True, metavar="JSON",
                        help="the run, as its start task handed it on")
    parser.add_argument("--attempt", type=int, default=1, metavar="N",
                        help="which attempt this is (1 for the first)")
    parser.add_argument("--recover", metavar="FAILURE",
                        help="run the module's on_failure script: the module failed so "
                        "(an exit code, `timeout` or `signal N`)")
    parser.add_argument("--outcome", metavar="FILE", help="write the attempt here, as JSON")
    parser.add_argument("--data-dir", metavar="DIR", default=os.environ.get(DATA_DIR_VARIABLE),
                        help=f"log_dir lives under DIR (default ${DATA_DIR_VARIABLE})")
    return parser


def task_main(argv: Sequence[str]) -> int:
    args = task_parser().parse_args(argv)
    config = under_data_dir(cfg.load(args.config), args.data_dir)
    known = planning.build(config, planning.Selection()).modules
    spec = _module(known, args.name, config)
    if args.recover is not None and spec.on_failure is None:
        raise FatalError(f"--recover: module {spec.name!r} has no on_failure script")
    run = TaskRun.from_json(args.run)
    env = cfg.load_env(config.root, os.environ)
    ctx = run.context(config)
    execute.become_subreaper()  # what a module leaves behind comes back to us, and ends
    handle = _append(run.log_path)
    with execute.Cancel() as cancel, logs.RunLog(config.tz, masker_for(config, env)) as runlog:
        runlog.attach_file(handle)
        again = False
        if args.recover is not None:
            result = runner._recover(_failed(spec, args.recover, ctx), spec.on_failure, ctx, env,
                                     runlog, cancel)
        else:
            result, again = attempt(spec, known.index(spec) + 1, len(known), args.attempt, ctx,
                                    env, runlog, cancel)
        interrupted = cancel.requested
    if args.outcome:
        cfg.write_atomic(Path(args.outcome), json.dumps(dict(outcome_json(result), retry=again))
                         + "\n")
    if interrupted:
        return EXIT_INTERRUPTED
    if args.recover is not None:
        return EXIT_OK if result.status == "recovered" else EXIT_FAILED
    return TASK_EXIT_CODES.get(result.status, EXIT_FAILED)


def _append(path: Path) -> TextIO:
    """The run's log, claimed by its start task, opened to add lines."""
    try:
        return open(path, "a", encoding="utf-8", errors="replace")
    except OSError as exc:
        raise FatalError(f"{path}: cannot open the run's log ({exc.strerror or exc}): is "
                         "log_dir shared by the workers (data_dir)?") from None


def _module(known: Sequence[ModuleSpec], name: str, config: Config) -> ModuleSpec:
    for spec in known:
        if spec.name == name:
            return spec
    raise FatalError(f"{config.display}: no module named {name!r} (known: "
                     f"{', '.join(s.name for s in known)})")


def attempt(spec: ModuleSpec, position: int, total: int, number: int, ctx: RunContext,
            env: Mapping[str, str], runlog: logs.RunLog, cancel: execute.Cancel
            ) -> tuple[runner.ModuleResult, bool]:
    """One attempt, logged as the local runner logs it: its start (the first attempt),
    a retry warning when the module's retry policy (retry.py) retries it, else how
    the module ended; and whether the engine is to try again."""
    log = logger.bind(module=spec.name)
    if number == 1:
        log.info(f"[{position}/{total}] starting {spec.rel}")
    outcome = execute.run_module(spec, ctx, contract.module_env(env, ctx, spec),
                                 partial(runlog.output, spec.name), cancel)
    status = "failed" if cancel.requested else runner.status_of(outcome)
    outcome = outcome._replace(stderr_tail=runner.masked_tail(outcome.stderr_tail, runlog.masker))
    result = runner.ModuleResult(spec, status, number, outcome, outcome)
    if status == "failed" and not cancel.requested and not outcome.write_error:
        decision = retry.decide(spec.retry_policy, number, outcome.exit_code, outcome.timed_out)
        if decision.retry:
            log.warning(f"attempt {number} failed ({outcome.describe()}); {decision.why}")
            return result, True
        runner._not_retried(log, spec, outcome, number, decision.why)
    runner._report(result)
    return result, False


def _failed(spec: ModuleSpec, failure: str, ctx: RunContext) -> runner.ModuleResult:
    """The module's last attempt, as much as its recovery script is told of it."""
    now = datetime.now(ctx.tz)
    code: int | None = None
    if failure.startswith("signal "):
        code = -int(failure.split()[1])
    elif failure.lstrip("-").isdigit():
        code = int(failure)
    outcome = Outcome(code, now, now, 0.0, timed_out=failure == "timeout")
    return runner.ModuleResult(spec, "failed", 1, outcome, outcome)


def outcome_json(result: runner.ModuleResult) -> dict[str, Any]:
    """A module's attempt (or recovery) for the finish task: enough to rebuild it."""
    def one(outcome: Outcome | None) -> dict[str, Any] | None:
        if outcome is None:
            return None
        data = outcome._asdict()
        data["started"] = outcome.started.isoformat()
        data["finished"] = outcome.finished.isoformat()
        data["stderr_tail"] = list(outcome.stderr_tail)
        return data

    last = result.recovery if result.recovery is not None else result.last
    return {"status": result.status, "attempts": result.attempts,
            "outcome": one(result.last), "recovery": one(result.recovery),
            "failure": runner.failed_exit_code(last) if last is not None else None}


def outcome_of(data: Mapping[str, Any] | None) -> Outcome | None:
    if not data:
        return None
    values = dict(data)
    values["started"] = cfg.parse_timestamp(values["started"])
    values["finished"] = cfg.parse_timestamp(values["finished"])
    values["stderr_tail"] = tuple(values.get("stderr_tail") or ())
    return Outcome(**{k: v for k, v in values.items() if k in Outcome._fields})


# The run's end.

class TaskState(NamedTuple):
    """What the engine knows of one module: its task's state and what it wrote."""

    state: str | None  # success, skipped, failed, upstream_failed, None...
    attempt: Mapping[str, Any] | None  # outcome_json of its last attempt
    recovery: Mapping[str, Any] | None  # outcome_json of its recovery task


def module_results(modules: Sequence[ModuleSpec], states: Mapping[str, TaskState]
                   ) -> list[runner.ModuleResult]:
    """The run's ModuleResults, as the local runner would have them."""
    results = []
    for spec in modules:
        task = states.get(spec.name) or TaskState(None, None, None)
        attempt_ = task.attempt
        last = outcome_of(attempt_.get("outcome")) if attempt_ else None
        if last is None:
            # A task that failed without a word from the task command was killed
            # from outside (Airflow's execution_timeout, a lost worker): it ran.
            status = "failed" if task.state == "failed" else "not_run"
            results.append(runner.ModuleResult(spec, status))  # type: ignore[arg-type]
            continue
        if task.state not in ("success", "skipped", "failed"):
            results.append(runner.ModuleResult(spec, "not_run"))
            continue
        recovery = outcome_of(task.recovery.get("recovery")) if task.recovery else None
        status = str(attempt_.get("status")) if attempt_ else "failed"
        if status == "failed" and task.recovery and task.recovery.get("status") == "recovered":
            status = "recovered"
        attempts = int(attempt_.get("attempts") or 1) if attempt_ else 1
        results.append(runner.ModuleResult(spec, status, attempts, last, last, recovery))  # type: ignore[arg-type]
    return results


def finish(config: Config, run: TaskRun, states: Mapping[str, TaskState], *,
           extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write the run's record (and review report), tidy its folder, write
    `metrics_file`, send the notifications and the monitor's end ping, with the
    local runner's own functions; the record."""
    env = cfg.load_env(config.root, os.environ)
    masker = masker_for(config, env)
    plan = planning.build(config, planning.Selection())
    results = module_results(plan.modules, states)
    status = runner.run_status(results, False)
    result = run.result()
    result.status, result.modules = status, results
    options = runner.Options(dry_run=run.dry_run, force=run.force)
    config = replace(config, last_run_date=run.last_run_date)
    handle = _append(run.log_path)
    with logs.RunLog(config.tz, masker) as runlog:
        runlog.attach_file(handle)
        record = runner._record(config, plan, result, options, env,
                                run.window if run.backfill else None, result.run_dir)
        record["trigger"] = run.trigger
        record.update(extra or {})
        record = masker.tree(record)
        result.record = record
        result.attention = runner._attention(config, record)
        if status in runner.REVIEWED:
            result.review = runner._write_review(config, result, record, env, masker)
        if runner._close_run_dir(config, run.run_id, result.run_dir) is None:
            record["run_dir"] = None
        cfg.write_atomic(result.record_path, json.dumps(record, indent=2, ensure_ascii=False)
                         + "\n")
        runner._farewell(result, record)
        runner._write_metrics(config, result, options, env)
        runner._notify(config, result, options, env, masker, None)
        runner._ping(config, result, options, env, masker, "end")
    return record
