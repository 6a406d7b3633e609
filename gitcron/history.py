"""`history` and `status`: what the run records say, for a person or a script.

Records are read newest first through gitcron/records.py, and reading stops as
soon as the question is answered: the cost follows what is shown, not the size
of the history. Records written by older versions lack keys, and hand-edited
ones may hold anything: every reader here tolerates both.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

from gitcron import config as cfg
from gitcron import records, runid
from gitcron.codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE, FatalError
from gitcron.config import Config
from gitcron.records import Record, records_newest_first
from gitcron.text import sanitise

DEFAULT_COUNT = 20
FAILING = ("failed", "interrupted")
SUCCESSFUL = ("success", "partial")
MARKS = {"success": "✓", "skipped": "↷", "failed": "✗", "recovered": "↺", "not_run": "·"}
ASCII_MARKS = {"success": "+", "skipped": ">", "failed": "x", "recovered": "r", "not_run": "."}
COLOURS = {"success": "32", "partial": "33", "recovered": "33", "skipped": "2",
           "not_run": "2", "failed": "31", "interrupted": "31"}


# The values of a record, whatever its age


def _text(value: Any, missing: str = "?") -> str:
    """A record's value as text a terminal or a GitHub runner shows and nothing more:
    records are files a module can write, so control characters are written as \\xNN.
    A value left empty is as missing as one left out."""
    return sanitise(missing if value is None or value == "" else str(value), one_line=True)


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    return float(value)


def _modules(record: Record) -> list[dict[str, Any]]:
    return [m if isinstance(m, dict) else {} for m in record["modules"]]


def started_at(record: Record, path: Path, tz: Any) -> datetime | None:
    """When the run started, as an aware time: from `started`, else from its run id."""
    try:
        moment = cfg.parse_timestamp(str(record.get("started")))
        if moment.tzinfo is not None:
            return moment
    except ValueError:
        pass
    found = runid.of_file(path.name)
    if found is None:
        return None
    try:
        return runid.parse(found)[0].replace(tzinfo=tz)
    except ValueError:
        return None


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


# Output: a terminal gets colour, a closed pipe ends quietly


class Style(NamedTuple):
    colour: bool
    marks: dict[str, str]

    def paint(self, text: str, status: str) -> str:
        code = COLOURS.get(status)
        return f"\033[{code}m{text}\033[0m" if self.colour and code else text

    def mark(self, status: Any) -> str:
        return self.paint(self.marks.get(str(status), "?"), str(status))


def terminal_style(stream: Any = None, environ: Any = None) -> Style:
    """Colour only on a terminal, and never when NO_COLOR is set (no-color.org)."""
    stream = sys.stdout if stream is None else stream
    environ = os.environ if environ is None else environ
    colour = bool(getattr(stream, "isatty", lambda: False)()) and not environ.get("NO_COLOR")
    try:
        "".join(MARKS.values()).encode(getattr(stream, "encoding", None) or "ascii")
        marks = MARKS
    except (UnicodeEncodeError, LookupError):
        marks = ASCII_MARKS
    return Style(colour, marks)


def emit(lines: Iterable[str]) -> None:
    """Print lines; into a closed pipe (`history | head -3`) end quietly. Under
    GitHub Actions they are fenced: a record's text cannot act on the runner."""
    token = os.urandom(16).hex() if os.environ.get("GITHUB_ACTIONS") == "true" else None
    try:
        if token:
            sys.stdout.write(f"::stop-commands::{token}\n")
        for line in lines:
            sys.stdout.write(line + "\n")
        if token:
            sys.stdout.write(f"::{token}::\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would report the failed flush at exit: point stdout at /dev/null.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def warn_skipped(command: str, skipped: list[Path]) -> None:
    if skipped:
        count = len(skipped)
        print(f"{command}: skipped {count} unreadable or foreign record"
              f"{'s' if count > 1 else ''} (e.g. {skipped[0]})", file=sys.stderr)


# `history`


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line naming the option at fault, as the main command line does."""
        self.exit(EXIT_USAGE, f"{self.prog}: {sanitise(message, one_line=True)} (see --help)\n")


MAX_COUNT = 1_000_000  # a run a minute for almost two years; more is a typo


def _count(value: str) -> int:
    """1 to MAX_COUNT, in ASCII digits (`isdigit` also takes `²`, which int() refuses)."""
    if not re.fullmatch(r"[0-9]{1,20}", value) or not 1 <= int(value) <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_COUNT} "
                                         f"(got {sanitise(value, one_line=True)!r})")
    return int(value)


def history_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="orchestrator.py history",
                     description="The newest runs, newest first, from their run records.")
    parser.add_argument("-n", type=_count, default=DEFAULT_COUNT, metavar="N",
                        help=f"how many runs (default {DEFAULT_COUNT})")
    parser.add_argument("--json", action="store_true", help="one run record a line, for jq")
    parser.add_argument("--config", metavar="PATH",
                        help="the config file (default: config.json, .yaml or .yml, here or "
                             "beside orchestrator.py)")
    parser.add_argument("--module", metavar="NAME",
                        help="one module's status and duration across the runs")
    return parser


def history_main(argv: Sequence[str]) -> int:
    """`orchestrator.py history [-n N] [--json] [--config PATH] [--module NAME]`."""
    args = history_parser().parse_args(list(argv))
    config = cfg.load(cfg.find(args.config))
    skipped: list[Path] = []
    runs = list(itertools.islice(records_newest_first(config.log_dir, skipped), args.n))
    warn_skipped("history", skipped)
    if args.module is not None:
        emit(module_lines(runs, args.module, args.json, terminal_style()))
    elif args.json:
        emit(json.dumps(record, ensure_ascii=False) for _, record in runs)
    else:
        emit(history_lines(runs, config.log_dir, terminal_style()))
    return EXIT_OK


def history_lines(runs: list[tuple[Path, Record]], log_dir: Path, style: Style) -> list[str]:
    """The table a person reads at a glance, then the success rate and median duration."""
    if not runs:
        return [f"no run records in {log_dir} yet"]
    header = ("run id", "trigger", "status", "duration")
    rows = [_cells(path, record) for path, record in runs]
    widths = [max(len(row[c]) for row in [header, *rows]) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(header, widths, strict=True))
             + "  modules"]
    for (_, record), (run, trigger, status, took) in zip(runs, rows, strict=True):
        lines.append("  ".join((run.ljust(widths[0]), trigger.ljust(widths[1]),
                                style.paint(status.ljust(widths[2]), status),
                                took.rjust(widths[3]), _marks(record, style) + _notes(record))))
    return [*lines, whole_summary(runs)]


def whole_summary(runs: list[tuple[Path, Record]]) -> str:
    """The success rate and median duration of the whole-pipeline runs; dry runs,
    narrowed runs and backfills are counted apart: they say little of the pipeline."""
    whole = [record for _, record in runs if records.is_whole(record)]
    line = _summary(len(runs), [_text(r.get("status")) for r in whole],
                    [_seconds(r.get("duration_seconds")) for r in whole],
                    whole=len(whole) != len(runs))
    apart = []
    for kind, noun in (("narrowed", "narrowed"), ("dry run", "dry run"), ("backfill", "backfill")):
        found = [r for _, r in runs if records.kind(r) == kind]
        if found:
            good = sum(r.get("status") == "success" for r in found)
            apart.append(f"{_counted(len(found), noun)} ({good} succeeded)")
    return line + (f"; not counted: {', '.join(apart)}" if apart else "")


def _counted(count: int, noun: str) -> str:
    plural = "" if count == 1 or noun == "narrowed" else "s"
    return f"{count} {noun}{plural}"


def _cells(path: Path, record: Record) -> tuple[str, str, str, str]:
    return (_text(record.get("run_id"), runid.of_file(path.name) or path.name),
            _text(record.get("trigger")), _text(record.get("status")),
            format_duration(_seconds(record.get("duration_seconds"))))


def _marks(record: Record, style: Style) -> str:
    return "".join(style.mark(module.get("status")) for module in _modules(record))


def _notes(record: Record) -> str:
    notes = []
    for status in ("failed", "recovered"):
        names = [_text(m.get("name")) for m in _modules(record) if m.get("status") == status]
        if names:
            notes.append(f"{status}: " + ", ".join(names))
    for key, note in (("dry_run", "dry run"), ("backfill", "backfill"), ("force", "forced")):
        if record.get(key) is True:
            notes.append(note)
    selection = record.get("selection")
    if isinstance(selection, dict) and selection.get("resume_of"):
        notes.append(f"resumes {_text(selection['resume_of'])}")
    elif records.is_narrowed(record):
        notes.append(f"narrowed: {_selection(selection)}")
    return f"  ({'; '.join(notes)})" if notes else ""


def _selection(selection: dict[str, Any]) -> str:
    """`--only a b`, `--from c`, `--skip d`, as the command line said them."""
    parts = []
    for key in ("only", "from", "skip"):
        value = selection.get(key)
        values = value if isinstance(value, list) else [value] if value else []
        if values:
            parts.append(f"--{key} " + " ".join(_text(v) for v in values))
    return " ".join(parts) or "?"


def _summary(count: int, statuses: list[str], durations: list[float | None],
             good_statuses: tuple[str, ...] = ("success",), whole: bool = False) -> str:
    """`count` runs; the rate and median over those of `statuses` and `durations`
    (all of them, or only the whole runs when `whole` says so)."""
    import statistics  # 4 ms to import: only the commands that summarise need it

    good = sum(statuses.count(status) for status in good_statuses)
    known = [d for d in durations if d is not None]
    median = format_duration(statistics.median(known)) if known else "?"
    counted = len(statuses)
    rate = f"{100 * good / counted:.0f}%" if counted else "?"
    of = f"{good} of {counted}{' whole runs' if whole else ''}"
    return (f"{count} run{'s' if count > 1 else ''}: success rate {rate} ({of}), "
            f"median duration {median}")


def module_lines(runs: list[tuple[Path, Record]], wanted: str, as_json: bool,
                 style: Style) -> list[str]:
    """One module across the runs: its status, duration, attempts and exit code."""
    entries = [(record, _module_entry(record, wanted)) for _, record in runs]
    if runs and not any(entry for _, entry in entries):
        seen = sorted({_text(m.get("name")) for _, r in runs for m in _modules(r)})
        raise FatalError(f"--module: no module {wanted!r} in the newest {len(runs)} runs; "
                         f"modules seen: {', '.join(seen) or 'none'}")
    if as_json:
        return [json.dumps({"run_id": record.get("run_id"), "started": record.get("started"),
                            "run_status": record.get("status"), "module": entry},
                           ensure_ascii=False) for record, entry in entries]
    if not runs:
        return ["no run records yet"]
    return _module_table(entries, style)


def _module_table(entries: list[tuple[Record, dict[str, Any] | None]], style: Style
                  ) -> list[str]:
    rows = [("run id", "status", "duration", "attempts", "exit code")]
    for record, entry in entries:
        entry = entry or {}
        rows.append((_text(record.get("run_id")), _text(entry.get("status"), "not in this run"),
                     format_duration(_seconds(entry.get("duration_seconds"))),
                     _text(entry.get("attempts"), ""), _text(entry.get("exit_code"), "")))
    widths = [max(len(row[c]) for row in rows) for c in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(rows[0], widths, strict=True)).rstrip()]
    for row in rows[1:]:
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=True)]
        cells[1] = style.paint(cells[1], row[1])
        lines.append("  ".join(cells).rstrip())
    present = [entry for _, entry in entries if entry]
    name = _text(present[0].get("name"))
    statuses = [_text(entry.get("status")) for entry in present]
    # A module that skipped did what it should: "conditions not met" is no failure.
    summary = _summary(len(present), statuses,
                       [_seconds(entry.get("duration_seconds")) for entry in present],
                       good_statuses=("success", "skipped"))
    return [*lines, f"{name} in {summary}"]


def _module_entry(record: Record, wanted: str) -> dict[str, Any] | None:
    """The module named as on the command line: its name, the part after its number,
    or its number."""
    number = str(int(wanted)) if wanted.isdigit() else None
    for module in _modules(record):
        name = _text(module.get("name"), "")
        match = cfg.NUMBERED.match(name)
        if name == wanted or (match and (match.group(2) == wanted
                                         or str(int(match.group(1))) == number)):
            return module
    return None


# `status`


class Schedule(NamedTuple):
    crons: tuple[str, ...]  # cron lines, evaluated in UTC as GitHub does
    source: str  # where they were found, for the reader


# A step that runs the pipeline: `orchestrator.py`, but not its reading commands.
RUNS_PIPELINE = re.compile(r"orchestrator\.py(?![ \t]+(?:status|history|init)\b)")
# Or the action: `uses: ./` in its own repository, `<owner>/gitcron@<ref>` elsewhere.
RUNS_ACTION = re.compile(r"\./?|[\w.-]+/gitcron@\S+")


def status_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="orchestrator.py status",
                     description="Is the pipeline healthy? Exit 0 when ok, 1 when failing or "
                                 "late: a monitor can run it.")
    parser.add_argument("--json", action="store_true", help="the report as one JSON object")
    parser.add_argument("--config", metavar="PATH",
                        help="the config file (default: config.json, .yaml or .yml, here or "
                             "beside orchestrator.py)")
    return parser


def status_main(argv: Sequence[str]) -> int:
    """`orchestrator.py status [--json] [--config PATH]`."""
    args = status_parser().parse_args(list(argv))
    config = cfg.load(cfg.find(args.config))
    report = status_report(config, datetime.now(timezone.utc))
    emit([json.dumps(report, ensure_ascii=False)] if args.json
         else status_lines(report, terminal_style()))
    return EXIT_OK if report["health"] == "ok" else EXIT_FAILED


def status_report(config: Config, now: datetime) -> dict[str, Any]:
    """Health at `now` (aware): the newest runs, the schedule, and the verdict.

    Only whole-pipeline runs decide it: a dry run, a narrowed run or a backfill
    says nothing of whether the scheduled pipeline works, and does not make a
    late schedule look on time."""
    skipped: list[Path] = []
    runs = _recent_runs(config, skipped)
    warn_skipped("status", skipped)
    schedule = find_schedule(config)
    times = expected_times(schedule, now, config.schedule_grace_minutes) if schedule else None
    newest = runs["newest"]
    failing = newest is not None and newest["status"] in FAILING
    degraded = newest is not None and newest["status"] == "partial"
    late = is_late(newest, times["due"] if times else None)
    reasons = []
    if failing or degraded:
        reasons.append(f"the newest run {newest['run_id']} {newest['status']}"
                       + "".join(f"; {part}" for part in newest["attention"]))
    if late:
        reasons.append(f"no run started since {_utc(times['due'])}, expected then "
                       f"(grace {config.schedule_grace_minutes:g} min)")
    # Failing first: a late pipeline whose last run failed needs that failure fixed.
    health = "failing" if failing else "degraded" if degraded else "late" if late else "ok"
    return {
        "health": health, "reasons": reasons, "warnings": _warnings(config, now),
        "now": now.isoformat(timespec="seconds"),
        "newest_run": _public(newest), "newest_success": _public(runs["success"]),
        "newest_other_run": _public(runs["other"]),
        "failures_in_a_row": runs["failures"], "recent": runs["recent"],
        "last_run_date": config.last_run_date,
        "schedule": _schedule_report(schedule, times, config.schedule_grace_minutes),
    }


def _warnings(config: Config, now: datetime) -> list[str]:
    """What is not wrong yet, but will be: a schedule GitHub is about to disable."""
    from gitcron import gitsync

    found = gitsync.newest_commit(config.root)
    if found is None:
        return []
    sha, stamp = found
    days = (now.timestamp() - stamp) / 86400
    if days <= gitsync.KEEP_ALIVE_DAYS:
        return []
    when = datetime.fromtimestamp(stamp, timezone.utc)
    return [f"the newest commit ({sha[:7]}, {_utc(when)}) is {int(days)} days old: GitHub "
            "disables the schedule of a public repository after 60 days without activity "
            '(with git.commit "changes", the next run commits anyway; or push any commit)']


def is_late(newest: dict[str, Any] | None, due: datetime | None) -> bool:
    """Late: a run was due (its grace has passed) and none has started since."""
    if due is None:
        return False
    return newest is None or newest["started_at"] is None or newest["started_at"] < due


def _recent_runs(config: Config, skipped: list[Path]) -> dict[str, Any]:
    """The newest whole run, the newest successful one, and the failures in a row
    (reading stops at the newest success); the newest other run (dry, narrowed or a
    backfill); and how the newest DEFAULT_COUNT runs went."""
    found: dict[str, Any] = {"newest": None, "success": None, "failures": 0, "other": None}
    runs = records_newest_first(config.log_dir, skipped)
    head = list(itertools.islice(runs, DEFAULT_COUNT))
    found["recent"] = whole_summary(head) if head else None
    for path, record in itertools.chain(head, runs):
        if not records.is_whole(record):
            if found["other"] is None:
                found["other"] = dict(_run_summary(path, record, config), kind=records.kind(record))
            continue
        run = _run_summary(path, record, config)
        if found["newest"] is None:
            found["newest"] = run
        if run["status"] in SUCCESSFUL:
            found["success"] = run
            break
        if run["status"] in FAILING:
            found["failures"] += 1
    return found


def _run_summary(path: Path, record: Record, config: Config) -> dict[str, Any]:
    moment = started_at(record, path, config.tz)
    started = record.get("started") if isinstance(record.get("started"), str) else None
    trigger = record.get("trigger")
    return {"run_id": _text(record.get("run_id"), runid.of_file(path.name) or "?"),
            "status": _text(record.get("status")),
            "trigger": None if trigger is None else _text(trigger),
            "started": (started or moment.isoformat()) if moment else None, "started_at": moment,
            "duration_seconds": _seconds(record.get("duration_seconds")),
            "attention": _attention(record)}


def _attention(record: Record) -> list[str]:
    """["failed: a, b", "recovered: c"]: the modules that needed attention."""
    parts = []
    for status in ("failed", "recovered"):
        names = [_text(m.get("name")) for m in _modules(record) if m.get("status") == status]
        if names:
            parts.append(f"{status}: {', '.join(names)}")
    return parts


def _public(run: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if run is None else {k: v for k, v in run.items() if k != "started_at"}


def find_schedule(config: Config) -> Schedule | None:
    """`schedule` in the config, else the cron lines of the workflows that run the pipeline."""
    if config.schedule:
        return Schedule((config.schedule,), f"{config.display}: schedule")
    crons: list[str] = []
    sources: list[str] = []
    for path in _workflow_files(config.root):
        found = workflow_crons(path)
        if found:
            crons.extend(found)
            sources.append(path.relative_to(config.root).as_posix())
    return Schedule(tuple(crons), ", ".join(sources)) if crons else None


def _workflow_files(root: Path) -> list[Path]:
    folder = root / ".github" / "workflows"
    return sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")])


def workflow_crons(path: Path) -> list[str]:
    """The cron lines of a workflow with a step that runs the orchestrator, else []."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        print(f"status: {sanitise(str(path), one_line=True)}: not a readable workflow; its "
              "schedule is not known",
              file=sys.stderr)
        return []
    if not isinstance(data, dict) or not _runs_pipeline(data.get("jobs")):
        return []
    # YAML 1.1 reads the key `on` as True.
    triggers = data.get("on", data.get(True))
    schedule = triggers.get("schedule") if isinstance(triggers, dict) else None
    if not isinstance(schedule, list):
        return []
    return [item["cron"] for item in schedule
            if isinstance(item, dict) and isinstance(item.get("cron"), str)]


def _runs_pipeline(jobs: Any) -> bool:
    if not isinstance(jobs, dict):
        return False
    return any(isinstance(step, dict) and (RUNS_PIPELINE.search(str(step.get("run", "")))
                                           or RUNS_ACTION.fullmatch(str(step.get("uses", ""))))
               for job in jobs.values() if isinstance(job, dict)
               for step in (job.get("steps") or []))


def expected_times(schedule: Schedule, now: datetime, grace_minutes: float) -> dict[str, Any]:
    """The last and next expected runs at `now`, and `due`: the newest expected time
    whose grace has passed (a run must have started since)."""
    from cronsim import CronSim, CronSimError  # only `status` needs cron

    utc_now = now.astimezone(timezone.utc)
    try:
        sims = [(cron, CronSim(cron, utc_now)) for cron in schedule.crons]
    except CronSimError as exc:
        raise FatalError(f"{schedule.source}: not a cron schedule GitHub runs: {exc}") from None
    return {
        "last": _latest(CronSim, schedule.crons, utc_now),
        "next": min((t for _, sim in sims if (t := next(sim, None)) is not None), default=None),
        "due": _latest(CronSim, schedule.crons, utc_now - timedelta(minutes=grace_minutes)),
        "words": [sim.explain() for _, sim in sims],
    }


def _latest(cron_sim: Any, crons: Sequence[str], moment: datetime) -> datetime | None:
    """The newest time at or before `moment` that any of `crons` names."""
    # cron has minutes, and CronSim leaves out its starting point itself.
    start = moment.replace(microsecond=0) + timedelta(seconds=1)
    found = [t for cron in crons
             if (t := next(cron_sim(cron, start, reverse=True), None)) is not None]
    return max(found, default=None)


def _utc(moment: datetime | None) -> str:
    return "never" if moment is None else moment.astimezone(timezone.utc).strftime(
        "%Y-%m-%d %H:%M UTC")


def _schedule_report(schedule: Schedule | None, times: dict[str, Any] | None,
                     grace: float) -> dict[str, Any] | None:
    if schedule is None or times is None:
        return None
    iso = {key: times[key].isoformat() if times[key] else None for key in ("last", "next", "due")}
    return {"crons": list(schedule.crons), "source": schedule.source, "words": times["words"],
            "last_expected": iso["last"], "next_expected": iso["next"],
            "must_have_started_since": iso["due"], "grace_minutes": grace}


def status_lines(report: dict[str, Any], style: Style) -> list[str]:
    health = report["health"]
    lines = [("health", style.paint(health, "success" if health == "ok" else "failed")
              + "".join(f"; {reason}" for reason in report["reasons"]))]
    lines += [("newest run", _describe(report["newest_run"], style)),
              ("newest success", _describe(report["newest_success"], style))]
    if report["newest_other_run"]:
        other = report["newest_other_run"]
        lines.append((f"newest {other['kind']}", _describe(other, style)))
    lines += [("failures in a row", str(report["failures_in_a_row"])),
              ("recent runs", report["recent"] or "none"),
              ("last_run_date", report["last_run_date"] or "never set")]
    lines += _schedule_lines(report["schedule"])
    lines += [("warning", warning) for warning in report["warnings"]]
    width = max(len(label) for label, _ in lines) + 1
    return [f"{(label + ':').ljust(width)} {value}" for label, value in lines]


def _describe(run: dict[str, Any] | None, style: Style) -> str:
    if run is None:
        return "none"
    started = cfg.parse_timestamp(run["started"]) if run["started"] else None
    return (f"{run['run_id']}  {style.paint(run['status'], run['status'])}  "
            f"started {_utc(started) if started else '?'}, "
            f"took {format_duration(run['duration_seconds'])}")


def _schedule_lines(schedule: dict[str, Any] | None) -> list[tuple[str, str]]:
    if schedule is None:
        return [("schedule", "none found (set `schedule` in the config, or a cron line in "
                             "the workflow that runs orchestrator.py)")]
    described = "; ".join(f"{cron} ({words}, UTC)"
                          for cron, words in zip(schedule["crons"], schedule["words"],
                                                 strict=True))
    moments = {key: cfg.parse_timestamp(schedule[key]) if schedule[key] else None
               for key in ("last_expected", "next_expected")}
    return [("schedule", f"{described} from {schedule['source']}"),
            ("last expected", _utc(moments["last_expected"])),
            ("next expected", _utc(moments["next_expected"]))]
