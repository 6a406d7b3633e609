"""The sequence of a run: plan in, outcomes -> statuses -> run record -> state.

A run has three phases, each a call whose value the next takes: execute (the
modules, with their recovery scripts), record (the run record, the review
report, `last_run_date`) and publish (commit-back, the Actions UI,
notifications). A backfill is one such run per interval.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from loguru import logger

from gitcron import catchup, contract, execute, github, logs, retry, runid
from gitcron import config as cfg
from gitcron import plan as planning
from gitcron import window as windows
from gitcron.codes import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_PUSH,
    MODULE_OK,
    MODULE_SKIP,
    FatalError,
)
from gitcron.config import Config, ModuleSpec
from gitcron.contract import RunContext
from gitcron.execute import Cancel, Outcome
from gitcron.plan import Plan
from gitcron.text import sanitise
from gitcron.window import Window

if TYPE_CHECKING:
    from gitcron.links import Escape
    from gitcron.notify import Attention

ModuleStatus = Literal["success", "skipped", "failed", "recovered", "not_run"]
RunStatus = Literal["success", "partial", "failed", "interrupted"]
Said = tuple[str, str]  # (level, text): a line said at the start of a run
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS)
REVIEWED = ("failed", "partial", "interrupted")  # the statuses that get a review report
EXIT_CODES: dict[RunStatus, int] = {
    "success": EXIT_OK,
    "partial": EXIT_OK,
    "failed": EXIT_FAILED,
    "interrupted": EXIT_INTERRUPTED,
}


class Options(NamedTuple):
    dry_run: bool = False
    force: bool = False
    verbose: bool = False
    push: bool | None = None  # --push / --no-push; None: as git.push says
    log_format: str = "text"  # --log-format: the console's, the log file keeps its own
    window_minutes: float | None = None  # --window
    wait_seconds: float = 0.0  # --wait


class ModuleResult(NamedTuple):
    spec: ModuleSpec
    status: ModuleStatus
    attempts: int = 0
    first: Outcome | None = None  # the first attempt: when the module started
    last: Outcome | None = None  # the last attempt: how it ended
    recovery: Outcome | None = None  # its on_failure script, when that ran

    def as_record(self) -> dict[str, Any]:
        last, first = self.last, self.first
        entry = {
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
            "error": self.error(),
        }
        if self.recovery is not None and self.spec.on_failure is not None:
            entry["recovery"] = {
                "path": self.spec.on_failure.rel,
                "status": "success" if status_of(self.recovery) == "success" else "failed",
                "exit_code": self.recovery.exit_code,
                "duration_seconds": self.recovery.duration_seconds,
            }
        return entry

    def error(self) -> str | None:
        """A failure in one line: the last line of stderr that says something, else how
        the module ended (what a GitHub annotation says of it too)."""
        if self.status not in ("failed", "recovered") or self.last is None:
            return None
        said = [line for line in self.last.stderr_tail if line.strip()]
        return said[-1].strip() if said else self.last.describe()


@dataclass
class RunResult:
    """Where one run stands after each phase. The runner never changes one in place:
    each phase returns a new one (`dataclasses.replace`)."""

    run_id: str
    status: RunStatus
    started: datetime
    log_path: Path
    record_path: Path
    window: Window
    run_dir: Path
    modules: list[ModuleResult] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)
    push_failed: bool = False
    changed: bool = False  # the pushed commit held more than the run's own files
    config_ok: bool = True  # the config still loads after the modules ran
    review: str = ""  # the review report, for a run that did not succeed
    attention: Attention | None = None  # the runs before it: failures in a row, a streak ended
    ping_id: str | None = None  # the run's id for the monitor (healthchecks' rid)
    log_dir_real: str = ""  # the log folder's real path when the run began (gitcron/links.py)
    escaped: bool = False  # the log folder became a symlink: nothing written or committed

    @property
    def exit_code(self) -> int:
        code = EXIT_CODES[self.status]
        return EXIT_PUSH if self.push_failed and code == EXIT_OK else code


@dataclass(frozen=True)
class Run:
    """The inputs of one run, which execute, record and publish all read."""

    config: Config
    plan: Plan
    options: Options
    env: Mapping[str, str]
    backfill: Window | None  # this interval of a backfill, or None
    catch_up: Window | None  # this interval of a catch-up, or None
    masker: logs.Masker
    actions: github.Actions
    runlog: logs.RunLog
    cancel: Cancel


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
    return "partial" if failed or any(r.status == "recovered" for r in results) else "success"


def run_all(config: Config, plan: Plan, options: Options, env: Mapping[str, str],
            backfill: list[Window] | None) -> int:
    """One run, or a backfill's runs oldest first; the exit code of the last one.

    The checkout's lock is held throughout; what a killed run left is repaired
    first; whether the run can be committed back is checked before any module
    runs. A backfill stops at the first run that does not end well. The signal
    handlers stay ours until the process exits: a cancel between two runs stops
    the rest, and one after the last push cannot turn a finished run into a crash.
    """
    from gitcron import lock  # only a real run takes the lock

    # Orphans of a module (a daemon that called setsid) come back to us and end with it.
    execute.become_subreaper()
    try:
        with lock.hold(config.root, config.log_dir, options.wait_seconds) as held:
            if held.waited:  # the run we waited for has moved last_run_date: read it anew
                config = cfg.load(config.display)
                plan = planning.build(config, plan.selection)
            said = [("WARNING", f"repaired what a killed run left: {line}")
                    for line in _repair(config, held.since)]
            every_run, first_run = _commit_back_lines(config, options, env)
            said += every_run + first_run
            if backfill is not None and not options.force:
                backfill, line = _not_done(config, backfill)
                if not backfill:
                    print(f"orchestrator: {line}", file=sys.stderr)
                    return EXIT_OK
                said += [("INFO", line)] if line else []
            return _runs(config, plan, options, env, backfill, said, every_run)
    except lock.Busy as exc:
        print(f"orchestrator: {sanitise(str(exc), one_line=True)}", file=sys.stderr)
        return EXIT_LOCKED


def _not_done(config: Config, backfill: list[Window]) -> tuple[list[Window], str]:
    """The intervals of a backfill that no earlier backfill ran to `success` or
    `partial`, and a line saying how many were done: the same command line, run
    again, continues where it stopped."""
    from gitcron import records

    keys = [records.window_key(w.as_record()) for w in backfill]
    done = records.done_windows(config.log_dir, [k for k in keys if k is not None])
    left = [w for w, key in zip(backfill, keys, strict=True) if key not in done]
    if len(left) == len(backfill):
        return left, ""
    count = len(backfill) - len(left)
    return left, (f"{count} of {_counted(len(backfill), 'interval')} already done; "
                  "--force reruns them")


def _repair(config: Config, since: float) -> list[str]:
    """What a killed run left, finished: its temporary files and missing record, and
    in a repository, the index and git's own temporary files."""
    from gitcron import leftovers, lock

    done = leftovers.repair(config.log_dir, config.path, config.root, config.tz)
    if lock.find_git_dir(config.root) is None:
        return done
    from gitcron import gitsync  # not imported for a project that is no repository

    return done + gitsync.repair(config.root, since)


def _runs(config: Config, plan: Plan, options: Options, env: Mapping[str, str],
          backfill: list[Window] | None, said: list[Said], every_run: list[Said]) -> int:
    """The run, or each run of a backfill or a catch-up, oldest first; the first that
    does not end well stops the rest. The first says all of `said`, the others only
    the lines of `every_run`."""
    caught = None if backfill is not None else _catch_up(config, plan, said)
    slots: list[Window | None] = list(backfill or (caught.windows if caught else [None]))
    code = EXIT_OK
    with Cancel() as cancel:
        cancel.ignore_after()  # until the process exits, a cancel changes nothing more
        for i, window in enumerate(slots, 1):
            if cancel.requested:
                return EXIT_INTERRUPTED
            own: list[Said] = [("INFO", f"catch-up: run {i} of {len(slots)}")] if caught else []
            code = execute_record_publish(config, plan, options, env, cancel,
                                          window if backfill else None, said + own,
                                          catch_up=window if caught else None).exit_code
            said = every_run
            if code != EXIT_OK:
                break
    return code


def _catch_up(config: Config, plan: Plan, said: list[Said]) -> catchup.CatchUp | None:
    """The catch-up runs of a whole run (read now, under the lock), and its lines."""
    if config.catch_up == "none" or not plan.whole or plan.resumed is not None:
        return None
    caught = catchup.plan(config, windows.now())
    if caught is not None:
        said.append(("INFO", caught.summary(config.catch_up)))
        if caught.left_out:
            said.append(("WARNING", caught.warning()))
    return caught


def _commit_back_lines(config: Config, options: Options, env: Mapping[str, str]
                       ) -> tuple[list[Said], list[Said]]:
    """What will become of the run's files, and why: said at the start of every run;
    and what the first run alone says. When they are to be pushed, the repository,
    branch and remote are checked now (FatalError: exit 2, nothing ran), not after
    the modules."""
    wanted, why = config.git.decide(options.push, options.dry_run, env)
    if not wanted:
        return [("INFO", f"commit-back: off ({why})")], []
    from gitcron import gitsync

    where = gitsync.check(config.root, config.git, env, config.log_dir)
    every_run: list[Said] = [("INFO", f"commit-back: {where} ({why})")]
    if gitsync.uncommitted(config.root, config.path):
        return every_run, [("WARNING", f"{config.display} has uncommitted changes: they will "
                                       "be committed with the run")]
    return every_run, []


def execute_record_publish(config: Config, plan: Plan, options: Options,
                           env: Mapping[str, str], cancel: Cancel, backfill: Window | None = None,
                           said: Sequence[Said] = (), catch_up: Window | None = None) -> RunResult:
    """One whole run: execute the plan, record it (log, run record, review, state),
    publish it (commit-back, notifications, the Actions UI). `backfill` or
    `catch_up`: the run's window (only a backfill leaves the state alone)."""
    started = datetime.now(config.tz)
    masker = logs.Masker(logs.secret_values(env, config.mask_env))
    actions = github.Actions(env, masker)
    actions.begin_untrusted()  # until finish(): the runner acts on our commands alone
    with logs.RunLog(config.tz, masker, verbose=options.verbose,
                     on_command=actions.module_command,
                     console_format=options.log_format) as runlog:
        run = Run(config, plan, options, env, backfill, catch_up, masker, actions, runlog,
                  cancel)
        begun = _begin(run, started, said)
        return _publish(run, _record_run(run, _execute(run, begun)))


def _execute(run: Run, begun: RunResult) -> RunResult:
    """The modules, in order, and what the run's status is for them."""
    ctx = _context(run, begun)
    try:
        modules = _run_modules(run, ctx)
    except Exception:
        logger.exception("the orchestrator failed unexpectedly; the run is recorded as failed")
        return replace(begun, status="failed")
    if run.runlog.write_error:  # the log is incomplete: the run cannot count as done
        return replace(begun, modules=modules, status="failed")
    return replace(begun, modules=modules, status=run_status(modules, run.cancel.requested))


def _record_run(run: Run, executed: RunResult) -> RunResult:
    """The run record, the review report and the state; a run whose config no longer
    loads, or whose record cannot be written, is `failed`."""
    result = executed
    try:
        result, escape = _checked(run, executed)
        if result.escaped:
            return result
        return _finish(run, result, escape)
    except Exception as exc:
        _record_not_written(result.record_path, exc)
        return replace(result, status="failed")


def _checked(run: Run, result: RunResult) -> tuple[RunResult, Escape | None]:
    """A folder of the run that became a symlink (gitcron/links.py), or a config that
    no longer loads, fails the run."""
    from gitcron import links

    config = run.config
    escape = links.escaped(config.log_dir, result.log_dir_real, result.record_path.parent,
                           result.run_dir)
    if escape is not None:
        logger.error(escape.line)
        result = replace(result, status="failed", escaped=escape.log_dir)
        if escape.log_dir:
            return result, escape
    config_ok = _config_still_loads(config)
    if not config_ok and result.status in ("success", "partial"):
        result = replace(result, status="failed")
    return replace(result, config_ok=config_ok), escape


def _publish(run: Run, result: RunResult) -> RunResult:
    """Metrics, commit-back, notifications, the Actions UI: none of them changes the
    run's status."""
    config, options, env, masker = run.config, run.options, run.env, run.masker
    _write_metrics(config, result, options, env)
    commit = push_error = None
    if config.git.wanted(options.push, options.dry_run, env) and not result.escaped:
        logger.info("committing the run back (log, record, config) and pushing it")
        run.runlog.close_file()  # the committed log is complete; what follows is console only
        result, commit, push_error = _commit_back(config, result, env, masker)
        result = replace(result, push_failed=push_error is not None)
    link = run.actions.log_link(commit, result.record.get("log_file", ""))
    sent = _notify(config, result, options, env, masker, link)
    _ping(config, result, options, env, masker, "end")
    _tell_actions(run.actions, result, commit, push_error, sent)
    run.actions.end_untrusted()
    return result


def _write_metrics(config: Config, result: RunResult, options: Options,
                   env: Mapping[str, str]) -> None:
    """metrics_file, after every run but a dry run; one that cannot be written is a WARNING."""
    if config.metrics_file is None or options.dry_run or not result.record:
        return
    from gitcron import metrics

    try:
        metrics.write(config.metrics_file, result.record, pipeline_name(config, env),
                      config.log_dir)
    except OSError as exc:
        logger.warning(f"metrics_file: cannot write {config.metrics_file}: "
                       f"{exc.strerror or exc}")


def _record_not_written(path: Path, exc: Exception) -> None:
    """One line for a full disk (a traceback would say no more); a traceback otherwise."""
    if isinstance(exc, OSError) and exc.errno in DISK_ERRORS:
        logger.error(f"could not write the run record {path}: {exc.strerror}")
    else:
        logger.exception(f"could not write the run record {path}")


def _begin(run: Run, started: datetime, said: Sequence[Said]) -> RunResult:
    """The run's log (a new file, never an old one), its folder and its window; its
    first lines, and the monitor told that it started."""
    begun = _open(run, started)
    _announce(run, begun)
    for level, line in said:
        logger.log(level, line)
    _ping(run.config, begun, run.options, run.env, run.masker, "start")
    return begun


def _open(run: Run, started: datetime) -> RunResult:
    config, plan, options = run.config, run.plan, run.options
    window_given = run.backfill or run.catch_up
    run_id, log_path, handle = _create_log(config, started)
    run.runlog.attach_file(handle)
    run.runlog.run_id = run_id
    if window_given is not None:
        window = window_given
    elif plan.resumed is not None:
        window = windows.from_record(plan.resumed.record.get("window"), config.tz) or (
            windows.default(config.last_run_date, started, None, config.tz))
    else:
        minutes = options.window_minutes or config.window_minutes
        window = windows.default(config.last_run_date, started, minutes, config.tz)
    run_dir = runid.run_dir(config.log_dir.absolute(), run_id, config.log_layout)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        logger.error(f"cannot create the run's folder {run_dir}: {exc.strerror}")
    record_path = runid.record_path(config.log_dir, run_id, config.log_layout)
    return RunResult(run_id, "failed", started, log_path, record_path, window, run_dir,
                     ping_id=new_ping_id(config, options),
                     log_dir_real=os.path.realpath(config.log_dir))


def new_ping_id(config: Config, options: Options) -> str | None:
    """The run's id for the monitor, the same at the start and the end."""
    if config.monitor is None or options.dry_run:
        return None
    from gitcron import notify

    return notify.new_ping_id()


def _context(run: Run, result: RunResult) -> RunContext:
    from gitcron import lock  # imported by run_all already: the run holds the lock

    config, options = run.config, run.options
    return RunContext(
        run_id=result.run_id, config_path=config.path, log_dir=config.log_dir.absolute(),
        root=config.root, tz=config.tz, last_run_date=config.last_run_date,
        started=result.started, dry_run=options.dry_run, force=options.force,
        window_start=result.window.start, window_end=result.window.end, run_dir=result.run_dir,
        keep_fds=lock.held_fds(),
    )


def _tell_actions(actions: github.Actions, result: RunResult, commit: str | None,
                  push_error: str | None, notifications: Sequence[str]) -> None:
    if not actions.enabled or not result.record:
        return
    failures = [
        github.Failure(r.spec.name, r.spec.critical,
                       r.last.describe(),
                       r.last.stderr_tail[-1] if r.last.stderr_tail else "",
                       r.spec.on_failure.rel if r.status == "recovered" and r.spec.on_failure
                       else "")
        for r in result.modules if r.status in ("failed", "recovered") and r.last is not None
    ]
    actions.finish(result.record, failures=failures, commit=commit, push_error=push_error,
                   notifications=notifications, changed=result.changed)


def _commit_back(config: Config, result: RunResult, env: Mapping[str, str],
                 masker: logs.Masker) -> tuple[RunResult, str | None, str | None]:
    """(the result, the pushed commit, None), or (the result, None, why) when committing
    or pushing failed (logged). The result has a new run id when the run was renamed."""
    from gitcron import gitsync

    # The run's folder, and `latest` now that it points there (else the link shows as
    # changed in the checkout after every run).
    run_dir = (result.run_dir, runid.latest(config.log_dir.absolute()))
    extra = config.git.paths + (tuple(_relative(p, config.root) for p in run_dir)
                                if result.record.get("run_dir") else ())
    badge = _write_badge(config, result.record)
    extra += (_relative(badge, config.root),) if badge else ()
    only_if_changed = config.git.commit == "changes" and all(
        m.status == "skipped" for m in result.modules)
    note = _keep_alive(config) if only_if_changed else None
    request = gitsync.Request(
        root=config.root, log=result.log_path, record=result.record_path,
        config=config.path if result.config_ok else None, extra=extra, settings=config.git,
        run_id=result.run_id, status=result.status, env=env,
        only_if_changed=only_if_changed and note is None, note=note, badge=badge,
        note_prefix=logs.prefix(datetime.now(config.tz), "WARNING", logs.ORCHESTRATOR).encode(),
        run_dir=result.run_dir if result.record.get("run_dir") else None,
        log_dir=config.log_dir, layout=config.log_layout,
    )
    try:
        pushed = gitsync.commit_and_push(request, masker)
    except gitsync.PushError as exc:
        logger.error(masker(str(exc)))
        return result, None, masker(str(exc))
    except Exception:
        logger.exception("committing the run back failed unexpectedly; its files are on disk")
        return result, None, "committing the run back failed unexpectedly; see the log"
    if pushed is None:
        logger.info("nothing changed under git.paths: no commit (git.commit: changes)")
        return result, None, None
    if pushed.renamed_to:
        logger.warning(f"a concurrent run had taken run id {result.run_id}: this run was "
                       f"committed as {pushed.renamed_to}")
        result = _renamed(config, result, pushed.renamed_to)
    if pushed.advice:
        logger.warning(f"pushed, but local edits stand in the way: {pushed.advice}")
    logger.info(f"pushed {pushed.commit[:7]} to {pushed.target} ({pushed.branch}) "
                f"in {pushed.attempts} attempt{'s' if pushed.attempts > 1 else ''}: "
                f"{pushed.stats}")
    return replace(result, changed=pushed.changed), pushed.commit, None


# shields.io's endpoint badge: https://shields.io/badges/endpoint-badge
BADGES = {"success": ("passing", "brightgreen"), "partial": ("partial", "yellow"),
          "failed": ("failing", "red"), "interrupted": ("failing", "red")}


def badge_json(status: str) -> str:
    """The badge of a run that ended `status`: the same bytes for the same message,
    so that an unchanged badge is no change to commit."""
    message, color = BADGES[status]
    return json.dumps({"schemaVersion": 1, "label": "pipeline", "message": message,
                       "color": color}, indent=2) + "\n"


def _write_badge(config: Config, record: dict[str, Any]) -> Path | None:
    """`<log_dir>/badge.json` for a whole-pipeline run (a narrowed run or a backfill
    says little of the pipeline: the badge stays as it was); None when not written."""
    from gitcron import records

    if not record or not records.is_whole(record) or record.get("status") not in BADGES:
        return None
    path = config.log_dir / runid.BADGE
    try:
        cfg.write_atomic(path, badge_json(record["status"]))
    except OSError as exc:
        logger.warning(f"could not write the badge {path}: {exc.strerror}")
        return None
    return path


def _keep_alive(config: Config) -> str | None:
    """Why this run commits even if nothing changed: the branch's newest commit is
    old enough for GitHub to disable its schedule soon. None when it is not."""
    from gitcron import gitsync

    found = gitsync.newest_commit(config.root)
    if found is None:
        return None
    days = (datetime.now(config.tz).timestamp() - found[1]) / 86400
    if days <= gitsync.KEEP_ALIVE_DAYS:
        return None
    why = (f"keep-alive: the newest commit ({found[0][:7]}) is {int(days)} days old, and "
           "GitHub disables the schedule of a public repository after 60 days without "
           "activity")
    logger.info(f"git.commit changes: committing even if nothing changed ({why})")
    return why


def _renamed(config: Config, result: RunResult, run_id: str) -> RunResult:
    """From the rename on, the run is known by its new id everywhere: the step
    summary and its link, the step outputs, the console."""
    log_path = runid.log_path(config.log_dir, run_id, config.log_layout)
    run_dir = runid.run_dir(config.log_dir.absolute(), run_id, config.log_layout)
    record = dict(result.record, run_id=run_id, log_file=_relative(log_path, config.root))
    if record.get("run_dir"):
        record["run_dir"] = _relative(run_dir, config.root)
    return replace(result, run_id=run_id, log_path=log_path, run_dir=run_dir, record=record,
                   record_path=runid.record_path(config.log_dir, run_id, config.log_layout))


def _create_log(config: Config, started: datetime) -> tuple[str, Path, Any]:
    try:
        return runid.claim(config.log_dir, runid.stub(started), config.log_layout)
    except OSError as exc:
        raise FatalError(f"{config.display}: log_dir: cannot create a log in {config.log_dir}: "
                         f"{exc.strerror or exc}") from None


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _announce(run: Run, result: RunResult) -> None:
    config, plan, options = run.config, run.plan, run.options
    names = ", ".join(spec.name for spec in plan.modules)
    flags = "".join((" (dry run)" if options.dry_run else "", " (force)" if options.force else "",
                     " (backfill)" if run.backfill is not None else ""))
    logger.info(f"run {result.run_id} started{flags}: "
                f"{_counted(len(plan.modules), 'module')}: {names}")
    start = windows.iso(result.window.start) if result.window.start else "the beginning"
    logger.info(f"window: {start} to {windows.iso(result.window.end)}")
    if plan.resumed is not None:
        logger.info(f"resuming run {plan.resumed.run_id} at {plan.modules[0].name}")
    logger.debug(f"config {config.path}; log {result.log_path}; run folder {result.run_dir}")
    for name in plan.ignored:
        logger.debug(f"modules/{name}: ignored (no number followed by '.', '_' or '-')")


def _run_modules(run: Run, ctx: RunContext) -> list[ModuleResult]:
    plan, env, runlog, cancel, actions = run.plan, run.env, run.runlog, run.cancel, run.actions
    results: list[ModuleResult] = []
    stopped = False
    for position, spec in enumerate(plan.modules, 1):
        # A log that cannot be written (a full disk) stops the run before the next
        # module: a module's work must not go unrecorded.
        if stopped or cancel.requested or runlog.write_error:
            results.append(ModuleResult(spec, "not_run"))
            continue
        where = f"[{position}/{len(plan.modules)}]"
        actions.start_group(f"{where} {spec.name}")
        try:
            logger.bind(module=spec.name).info(f"{where} starting {spec.rel}")
            result = _run_one(spec, ctx, env, runlog, cancel)
            _report(result)
            if result.status == "failed" and spec.on_failure and not cancel.requested:
                result = _recover(result, spec.on_failure, ctx, env, runlog, cancel)
        finally:
            actions.end_group()
        results.append(result)
        stopped = result.status == "failed" and spec.critical
    return results


def _run_one(
    spec: ModuleSpec, ctx: RunContext, env: Mapping[str, str], runlog: logs.RunLog, cancel: Cancel
) -> ModuleResult:
    """All attempts at one module: a failure is retried, a skip or an interruption never."""
    log = logger.bind(module=spec.name)
    module_env = contract.module_env(env, ctx, spec)
    output = partial(runlog.output, spec.name)
    first = outcome = execute.run_module(spec, ctx, module_env, output, cancel)
    attempts = 1
    while (status_of(outcome) == "failed" and not outcome.interrupted
           and not outcome.write_error and not cancel.requested):
        decision = retry.decide(spec.retry_policy, attempts, outcome.exit_code,
                                outcome.timed_out)
        if not decision.retry:
            _not_retried(log, spec, outcome, attempts, decision.why)
            break
        log.warning(f"attempt {attempts} failed ({outcome.describe()}); {decision.why}")
        if cancel.wait(decision.delay_seconds):
            break
        outcome = execute.run_module(spec, ctx, module_env, output, cancel)
        attempts += 1
    status = "failed" if cancel.requested else status_of(outcome)
    outcome = outcome._replace(stderr_tail=masked_tail(outcome.stderr_tail, runlog.masker))
    return ModuleResult(spec, status, attempts, first, outcome)


def _not_retried(log: Any, spec: ModuleSpec, outcome: Outcome, attempts: int, why: str) -> None:
    """Said when the module has retries, or asked for one with EX_TEMPFAIL: otherwise a
    failure is simply a failure, as it always was."""
    if spec.retries or outcome.exit_code == retry.EX_TEMPFAIL:
        log.warning(f"attempt {attempts} failed ({outcome.describe()}); {why}")


def masked_tail(tail: Sequence[str], masker: logs.Masker) -> tuple[str, ...]:
    """The last stderr lines, masked before anyone repeats them. A line cut short
    also loses what a secret cut in two may start in: its head would not match."""
    lines = []
    for line in tail:
        if line.endswith(execute.CUT_MARK):
            line = masker.split(line.removesuffix(execute.CUT_MARK))[0] + execute.CUT_MARK
        lines.append(masker(line))
    return tuple(lines)


def failed_exit_code(outcome: Outcome) -> str:
    """PIPELINE_FAILED_EXIT_CODE: the exit code, or `timeout`, or `signal N`."""
    if outcome.timed_out:
        return "timeout"
    if outcome.exit_code is None:
        return "not started"
    if outcome.exit_code < 0:
        return f"signal {-outcome.exit_code}"
    return str(outcome.exit_code)


def _recover(result: ModuleResult, recovery: ModuleSpec, ctx: RunContext,
             env: Mapping[str, str], runlog: logs.RunLog, cancel: Cancel) -> ModuleResult:
    """Run the module's on_failure script once; `recovered` when it exits 0."""
    assert result.last is not None
    log = logger.bind(module=recovery.name)
    log.info(f"running the recovery script {recovery.rel}")
    recovery_env = contract.recovery_env(env, ctx, result.spec, failed_exit_code(result.last))
    outcome = execute.run_module(recovery, ctx, recovery_env,
                                 partial(runlog.output, recovery.name), cancel)
    took = f"{outcome.duration_seconds:.1f} s"
    if status_of(outcome) == "success" and not cancel.requested:
        log.warning(f"recovery succeeded in {took}: {result.spec.name} is recovered")
        return result._replace(status="recovered", recovery=outcome)
    log.error(f"recovery failed: {outcome.describe()}, after {took}")
    return result._replace(recovery=outcome)


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
    why = outcome.describe()
    tries = f"{result.attempts} attempt{'s' if result.attempts > 1 else ''}"
    log.error(f"failed ({kind}): {why}, after {tries} in {took}")
    if outcome.stderr_tail:
        log.error("last lines of stderr:\n" + "\n".join(outcome.stderr_tail))


def _finish(run: Run, result: RunResult, escape: Escape | None) -> RunResult:
    config, plan, options, env, masker = run.config, run.plan, run.options, run.env, run.masker
    record = masker.tree(_record(config, plan, result, options, env, run.backfill, result.run_dir))
    result = replace(result, attention=_attention(config, record))
    if result.status in REVIEWED and escape is None:
        result = replace(result, review=_write_review(config, result, record, env, masker))
    if escape is not None or _close_run_dir(config, result.run_id, result.run_dir) is None:
        record["run_dir"] = None
    cfg.write_atomic(result.record_path, json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    _store_state(config, plan, result, options, run.backfill, result.config_ok)
    _farewell(result, record)
    return replace(result, record=record)


def pipeline_name(config: Config, env: Mapping[str, str]) -> str:
    return env.get("GITHUB_REPOSITORY") or config.root.resolve().name


def _attention(config: Config, record: dict[str, Any]) -> Attention | None:
    """What the records of the runs before this one say, for its review and its
    notifications; None when neither needs it, or the records cannot be listed."""
    if not config.notify and record["status"] not in REVIEWED:
        return None
    from gitcron import notify

    try:
        return notify.attention(config.log_dir, record)
    except FatalError as exc:
        logger.warning(f"the runs before this one are not known: {exc}")
        return None


def _review(config: Config, result: RunResult, record: dict[str, Any],
            env: Mapping[str, str], masker: logs.Masker) -> str:
    from gitcron import notify

    tails = {r.spec.name: r.last.stderr_tail for r in result.modules if r.last is not None}
    in_a_row = result.attention.failures_in_a_row if result.attention else None
    return notify.review_report(record, tails, pipeline=pipeline_name(config, env),
                                log_dir=config.log_dir, mask=masker, failures_in_a_row=in_a_row)


def _write_review(config: Config, result: RunResult, record: dict[str, Any],
                  env: Mapping[str, str], masker: logs.Masker) -> str:
    """runs/<run_id>/review.txt: what an operator reads first; committed with the run."""
    from gitcron import notify

    text = _review(config, result, record, env, masker)
    path = notify.review_path(config.log_dir, result.run_id, config.log_layout)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        cfg.write_atomic(path, text)
    except OSError as exc:
        logger.error(f"could not write the review report {path}: {exc.strerror}")
        return text
    logger.info(f"review report: {_relative(path, config.root)}")
    return text


def _notify(config: Config, result: RunResult, options: Options, env: Mapping[str, str],
            masker: logs.Masker, link: str | None) -> list[str]:
    """Send the run to the channels that want its status; never changes the run."""
    if not config.notify or not result.record:
        return []
    from gitcron import notify

    seen = result.attention or notify.Attention.alone(result.status)
    wanted = [i for i, channel in enumerate(config.notify)
              if notify.occasion(channel, result.status, seen)]
    if not wanted:
        return []
    review = result.review or _review(config, result, result.record, env, masker)
    lines = notify.send(config.notify, result.record, review, env=env, log_path=result.log_path,
                        log_link=link, mask=masker, dry_run=options.dry_run,
                        pipeline=pipeline_name(config, env), attention=seen)
    failed = set(notify.failures(lines))
    # One line per channel that wants this run, in order: name each by its place
    # in the config, so that two webhooks on one host can be told apart.
    for i, line in zip(wanted, lines, strict=False):
        logger.log("WARNING" if line in failed else "INFO", f"notify[{i}]: {line}")
    return lines


def _ping(config: Config, result: RunResult, options: Options, env: Mapping[str, str],
          masker: logs.Masker, phase: Literal["start", "end"]) -> None:
    """Tell the monitor the run started, or how it ended; never changes the run."""
    if config.monitor is None:
        return
    if options.dry_run:
        if phase == "start":
            logger.info("monitor: not pinged (dry run)")
        return
    from gitcron import notify

    rid = result.ping_id or notify.new_ping_id()
    line = notify.ping(config.monitor, phase, status=result.status, rid=rid,
                       run_id=result.run_id, env=env, mask=masker, body=result.review)
    if line is not None:
        logger.log("WARNING" if notify.failures([line]) else "INFO", line)


def _config_still_loads(config: Config) -> bool:
    """A module may have rewritten the config (its own settings); it must still be valid."""
    if config.unchanged():
        return True
    try:
        cfg.load(str(config.path))
    except FatalError as exc:
        logger.error(f"the config no longer loads after the run: {exc}; last_run_date is not "
                     "stored and the file is not committed")
        return False
    return True


def _close_run_dir(config: Config, run_id: str, run_dir: Path) -> Path | None:
    """An empty run folder goes (with the day folders it leaves empty); one with
    files stays, and `latest` points at it."""
    runs = config.log_dir.absolute() / runid.RUNS_FOLDER
    try:
        if not any(run_dir.iterdir()):
            run_dir.rmdir()
            _remove_empty_parents(run_dir.parent, runs)
            return None
    except OSError:
        return None
    _point_latest(runid.latest(config.log_dir.absolute()),
                  runid.latest_target(run_id, config.log_layout))
    return run_dir


def _remove_empty_parents(folder: Path, top: Path) -> None:
    """The daily layout's `YYYY/MM/DD` folders under `top` that hold nothing."""
    while folder != top and top in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty (or already gone): the rest above it holds something
            return
        folder = folder.parent


def _point_latest(link: Path, target: str) -> None:
    """`runs/latest` -> the run's folder: a relative link made beside it, then renamed
    over the old one, so that a kill leaves the old link or the new, never none."""
    tmp = link.parent / f".{runid.LATEST}.{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        os.symlink(target, tmp)
        os.replace(tmp, link)
    except OSError as exc:
        logger.warning(f"could not point {link} at {target}: {exc.strerror}")
        tmp.unlink(missing_ok=True)


def _record(
    config: Config, plan: Plan, result: RunResult, options: Options, env: Mapping[str, str],
    backfill: Window | None, run_dir: Path | None,
) -> dict[str, Any]:
    finished = datetime.now(config.tz)
    return {
        "run_id": result.run_id,
        "status": result.status,
        "started": _iso(result.started),
        "finished": _iso(finished),
        "duration_seconds": round((finished - result.started).total_seconds(), 3),
        "dry_run": options.dry_run,
        "force": options.force,
        "trigger": env.get("GITHUB_EVENT_NAME") or "local",
        "selection": plan.selection_record(),
        "window": result.window.as_record(),
        "backfill": backfill is not None,
        "run_dir": _relative(run_dir, config.root) if run_dir else None,
        "last_run_date_before": config.last_run_date,
        "log_file": _relative(result.log_path, config.root),
        "modules": [m.as_record() for m in result.modules],
        **_monitor_record(config, result),
    }


def _monitor_record(config: Config, result: RunResult) -> dict[str, Any]:
    """`"monitor": {"kind", "rid"}` when a monitor is set: the id its pings carried."""
    if config.monitor is None:
        return {}
    return {"monitor": {"kind": config.monitor.kind, "rid": result.ping_id}}


def _relative(path: Path, root: Path) -> str:
    try:
        return path.absolute().relative_to(root).as_posix()
    except ValueError:
        return str(path)


def new_last_run_date(plan: Plan, result: RunResult, options: Options,
                      backfill: Window | None) -> tuple[datetime | None, str]:
    """What last_run_date becomes, or None and why it stays."""
    if result.status not in ("success", "partial"):
        return None, f"the run {result.status}"
    if options.dry_run:
        return None, "a dry run"
    if backfill is not None:
        return None, "a backfill (--since/--until)"
    if plan.resumed is not None:
        started = plan.resumed.original.get("started")
        try:
            return cfg.parse_timestamp(str(started)), ""
        except ValueError:
            return None, f"the resumed run's start is unreadable ({started!r})"
    if not plan.whole:
        return None, "a narrowed run (--only, --from or --skip): the modules left out did not run"
    # The end of the run's window: its start, but for a catch-up run the end of its
    # interval, so that a failed catch-up starts again where it stopped.
    return result.window.end, ""


def _store_state(config: Config, plan: Plan, result: RunResult, options: Options,
                 backfill: Window | None, config_ok: bool) -> None:
    moment, why = new_last_run_date(plan, result, options, backfill)
    if moment is None:
        before = f"at {config.last_run_date}" if config.last_run_date else "unset"
        logger.info(f"last_run_date left {before}: {why}")
        return
    if not config_ok:
        return
    value = moment.astimezone(config.tz).isoformat(timespec="seconds")
    try:
        cfg.set_key(config, "last_run_date", value)
    except (OSError, FatalError) as exc:
        logger.error(f"{config.display}: last_run_date not stored: {exc}")
        return
    logger.info(f"last_run_date set to {value}")


def _farewell(result: RunResult, record: dict[str, Any]) -> None:
    modules = record["modules"]
    counts = {s: sum(m["status"] == s for m in modules) for s in
              ("success", "skipped", "failed", "recovered", "not_run")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    line = f"run {result.run_id} {result.status} in {record['duration_seconds']:.1f} s: {summary}"
    for status in ("failed", "recovered"):
        names = [m["name"] for m in modules if m["status"] == status]
        if names:
            line += f" ({status}: {', '.join(names)})"
    if result.status == "success":
        logger.info(line)
    elif result.status == "partial":
        logger.warning(line)
    else:
        logger.error(line)
