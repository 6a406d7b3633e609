"""What a killed run leaves beside its files, found and finished by the next run.

kill -9 while a file is written atomically (config.write_atomic) leaves its
temporary file; kill -9 before the run record is written leaves a log with no
record. The next run, holding the checkout's lock (so no other run is writing),
removes the first and writes the second, before anything is committed:
docs/commit-back.md, "Crash safety".
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from datetime import tzinfo
from pathlib import Path
from typing import Any

from gitcron import config as cfg
from gitcron import runid

KILLED_NOTE = ("the run was killed before its record was written; the next run wrote this "
               "record from the log")
# `<stamp> | LEVEL    | who | text`: the log's line (gitcron/logs.py).
LINE = re.compile(r"^[0-9-]+ [0-9:.]+ \| (?P<level>[A-Z]+) *\| (?P<who>.*?) \| (?P<text>.*)$")
STARTED = re.compile(
    r"run \S+ started(?P<flags>(?: \([a-z ]+\))*): [0-9]+ modules?: (?P<names>.*)$")
ENDED = (("succeeded in ", "success"), ("skipped (", "skipped"), ("failed (", "failed"),
         ("recovery succeeded ", "recovered"))


def repair(log_dir: Path, config_path: Path, root: Path, tz: tzinfo) -> list[str]:
    """Remove the runner's temporary files, write the records killed runs never
    wrote; one line each of what was done."""
    killed = _killed(log_dir)
    run_dirs = [_run_dir(log_dir, run_id) for _, run_id in killed]
    folders = [*_run_file_folders(log_dir), Path(os.path.realpath(config_path)).parent,
               log_dir / runid.RUNS_FOLDER, *(d for d in run_dirs if d is not None)]
    done = _remove_temporary(folders, root)
    done += [_write_killed_record(folder, run_id, run_dir, root, tz)
             for (folder, run_id), run_dir in zip(killed, run_dirs, strict=True)]
    return done


def newest_unrecorded(log_dir: Path, tz: tzinfo) -> tuple[Path, dict[str, Any]] | None:
    """The newest log with no record, and the record `repair` will write for it:
    `--resume` (planned before the run's repair) sees a killed run all the same."""
    killed = _killed(log_dir)
    if not killed:
        return None
    folder, run_id = max(killed, key=lambda found: runid.sort_key(found[1]))
    record = killed_record(run_id, _read_lines(folder / runid.log_name(run_id)), tz)
    return folder / runid.record_name(run_id), record


def _run_file_folders(log_dir: Path) -> list[Path]:
    """Where a killed run's log may be: the log folder (flat layout) and the newest
    day's folder (daily layout); older days were repaired by the runs after them."""
    from gitcron import records

    day = records.newest_day(log_dir)
    return [log_dir] if day is None else [log_dir, day]


def _killed(log_dir: Path) -> list[tuple[Path, str]]:
    """(folder, run id) of each log with no record beside it."""
    found = []
    for folder in _run_file_folders(log_dir):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        found += [(folder, run_id) for run_id in _logs_without_records(names)]
    return found


def _run_dir(log_dir: Path, run_id: str) -> Path | None:
    return next((path for layout in runid.LAYOUTS
                 if (path := runid.run_dir(log_dir, run_id, layout)).is_dir()), None)


def is_temporary(name: str) -> bool:
    """A name only the runner gives: config.write_atomic's, or `runs/.latest.<pid>`."""
    return bool(cfg.TEMPORARY_NAME.fullmatch(name)) or bool(
        re.fullmatch(rf"\.{re.escape(runid.LATEST)}\.[0-9]+", name))


def _remove_temporary(folders: Iterable[Path], root: Path) -> list[str]:
    removed = []
    for folder in dict.fromkeys(folders):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            if is_temporary(name):
                (folder / name).unlink(missing_ok=True)
                removed.append(_relative(folder / name, root))
    if not removed:
        return []
    return [f"removed {len(removed)} temporary file{'s' if len(removed) > 1 else ''} a killed "
            f"run left: {', '.join(removed)}"]


def _logs_without_records(names: list[str]) -> list[str]:
    """Set arithmetic first: with 10,000 runs, only the odd few names are parsed."""
    logs = {name.removesuffix(runid.LOG_SUFFIX) for name in names
            if name.endswith(runid.LOG_SUFFIX)}
    records = {name.removesuffix(runid.RECORD_SUFFIX) for name in names
               if name.endswith(runid.RECORD_SUFFIX)}
    return sorted(run_id for stem in logs - records
                  if (run_id := runid.of_file(stem + runid.LOG_SUFFIX)) is not None
                  and _is_run_id(run_id))


def _is_run_id(run_id: str) -> bool:
    try:
        runid.parse(run_id)
    except ValueError:  # `workflow_20261399_...`: a name, not a minute
        return False
    return True


def _write_killed_record(folder: Path, run_id: str, run_dir: Path | None, root: Path,
                         tz: tzinfo) -> str:
    log = folder / runid.log_name(run_id)
    record = killed_record(run_id, _read_lines(log), tz)
    record["log_file"] = _relative(log, root)
    record["run_dir"] = _relative(run_dir, root) if run_dir is not None else None
    cfg.write_atomic(folder / runid.record_name(run_id),
                     json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return f"run {run_id} was killed before its record was written: recorded as interrupted"


def killed_record(run_id: str, lines: Iterable[str], tz: tzinfo) -> dict[str, Any]:
    """The record of a killed run, as far as its log tells: the modules it names,
    how each ended (a module that started and never ended was running: failed)."""
    flags, order, ended = "", [], {}
    for line in lines:
        match = LINE.match(line)
        if match is None:
            continue
        who, text = match["who"], match["text"]
        started = STARTED.match(text) if who == "orchestrator" and not order else None
        if started:
            flags, order = started["flags"], [n for n in started["names"].split(", ") if n]
        elif who in order and re.match(r"\[[0-9]+/[0-9]+\] starting ", text):
            ended.setdefault(who, "failed")
        elif who in order and match["level"] in ("INFO", "WARNING", "ERROR"):
            status = next((s for prefix, s in ENDED if text.startswith(prefix)), None)
            ended[who] = status or ended.get(who, "failed")
    return {
        "run_id": run_id, "status": "interrupted",
        "started": runid.parse(run_id)[0].replace(tzinfo=tz).isoformat(timespec="seconds"),
        "finished": None, "duration_seconds": None,
        "dry_run": "(dry run)" in flags, "force": "(force)" in flags,
        "trigger": None, "selection": None, "window": None, "backfill": "(backfill)" in flags,
        "last_run_date_before": None,
        "modules": [{"name": name, "status": ended.get(name, "not_run")} for name in order],
        "note": KILLED_NOTE,
    }


def _read_lines(log: Path) -> list[str]:
    try:
        return log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _relative(path: Path, root: Path) -> str:
    try:
        return path.absolute().relative_to(root.absolute()).as_posix()
    except ValueError:
        return str(path)
