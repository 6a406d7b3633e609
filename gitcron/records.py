"""Run records on disk, found newest first by name and read one at a time.

A scheduled pipeline accumulates thousands of records, so they are listed by
file name (the run id orders them, see gitcron/runid.py) and read only as the
caller asks: `--resume` stops at the first that decides. Kept apart from
gitcron/history.py so that `--resume` does not import `history` and `status`.
"""

from __future__ import annotations

import heapq
import json
import os
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from gitcron import runid
from gitcron.codes import FatalError
from gitcron.config import parse_timestamp

Record = dict[str, Any]


def record_files_newest_first(log_dir: Path) -> Iterator[Path]:
    """The run records of `log_dir` in both layouts, newest run id first; none is read.

    Flat records are directly in `log_dir`; daily ones in its `YYYY/MM/DD/`
    folders, listed newest day first and only as the caller reads on. The two
    are merged by run id: a repository that switched layouts reads as one history.
    """
    names = _listing(log_dir)
    if names is None:
        return iter(())
    flat = ((found, log_dir) for found in _record_ids(names))
    daily = ((found, day) for day in _days_newest_first(log_dir, names)
             for found in _record_ids(_listing(day, inner=True) or []))
    merged = heapq.merge(flat, daily, key=lambda pair: runid.sort_key(pair[0]), reverse=True)
    return (folder / runid.record_name(found) for found, folder in merged)


def _listing(folder: Path, inner: bool = False) -> list[str] | None:
    """The names in `folder`; None if there is none (or, `inner`, a file of that name)."""
    try:
        return os.listdir(folder)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        if inner:
            return None
        raise FatalError(f"{folder}: cannot list the run records: not a folder") from None
    except OSError as exc:
        raise FatalError(f"{folder}: cannot list the run records: {exc.strerror or exc}") from None


def _record_ids(names: list[str]) -> Iterator[str]:
    """The run ids of the records among `names`, newest first.

    10,000 runs make 20,000 names. Most callers read only the newest few, so the
    greatest names are taken first in one pass (`_descending`); the rest are
    filtered and sorted only if the caller reads past them. Names sort as run ids
    but for `_10` before `_9` within one minute; those are put right minute by
    minute, as they are taken.
    """
    first, last = len(runid.PREFIX), -len(runid.RECORD_SUFFIX)
    return _by_run_id(name[first:last] for name in _descending(names)
                      if name.endswith(runid.RECORD_SUFFIX) and name.startswith(runid.PREFIX))


def _days_newest_first(log_dir: Path, names: list[str]) -> Iterator[Path]:
    """The day folders of the daily layout, `YYYY/MM/DD`, newest first, each level
    listed only when the caller gets to it."""
    for year in sorted((n for n in names if runid.YEAR.fullmatch(n)), reverse=True):
        for month in _subfolders(log_dir / year):
            yield from (log_dir / year / month / d for d in _subfolders(log_dir / year / month))


def newest_day(log_dir: Path) -> Path | None:
    """The newest day folder of the daily layout, if there is one."""
    return next(_days_newest_first(log_dir, _listing(log_dir, inner=True) or []), None)


def _subfolders(folder: Path) -> list[str]:
    return sorted((n for n in _listing(folder, inner=True) or []
                   if runid.MONTH_OR_DAY.fullmatch(n)),
                  reverse=True)


# How many of the greatest names are taken before sorting them all: a run's log
# and record sort side by side, so this is the newest dozen or so runs.
HEAD = 32


def _descending(names: list[str]) -> Iterator[str]:
    """`names`, greatest first: the first HEAD found in one pass, the rest sorted
    only when asked for (every one of them sorts below every one of the head)."""
    head = heapq.nlargest(HEAD, names)
    yield from head
    if len(head) < len(names):
        yield from sorted(names, reverse=True)[len(head):]


def _by_run_id(ids: Iterable[str]) -> Iterator[str]:
    """Run ids sorted as strings, newest first, in true run id order; other names dropped."""
    group: list[tuple[tuple[str, int], str]] = []
    for found in ids:
        try:
            key = runid.sort_key(found)
        except ValueError:
            continue
        if group and group[0][0][0] != key[0]:
            yield from (found for _, found in sorted(group, reverse=True))
            group = []
        group.append((key, found))
    yield from (found for _, found in sorted(group, reverse=True))


def read_record(path: Path) -> Record | None:
    """A run record, or None for a file that cannot be read or is not one."""
    try:
        record = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    if isinstance(record, dict) and isinstance(record.get("modules"), list):
        return record
    return None


def records_newest_first(
    log_dir: Path, skipped: list[Path] | None = None
) -> Iterator[tuple[Path, Record]]:
    """(path, record), newest run first, each read only when the caller asks for it.

    Unreadable or foreign files are passed over; `skipped`, when given, collects
    them so that the caller can say so once.
    """
    for path in record_files_newest_first(log_dir):
        record = read_record(path)
        if record is not None:
            yield path, record
        elif skipped is not None:
            skipped.append(path)


def renamed(content: bytes, run_id: str, log_file: str, run_dir: str | None) -> bytes:
    """A run record under a new run id (a concurrent run pushed the same one first)."""
    record = json.loads(content)
    record["run_id"], record["log_file"] = run_id, log_file
    if run_dir is not None:
        record["run_dir"] = run_dir
    return (json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode()


def is_rehearsal(record: Record) -> bool:
    """A dry run or a backfill: not the pipeline's own progress."""
    return bool(record.get("dry_run")) or bool(record.get("backfill"))


def is_narrowed(record: Record) -> bool:
    """A run of some modules only (`--only`, `--from`, `--skip`). A `--resume` run
    is not: it finishes the whole run it resumes."""
    selection = record.get("selection")
    return isinstance(selection, dict) and not selection.get("resume_of")


def kind(record: Record) -> str:
    """"whole", or what the run was instead: "dry run", "backfill" or "narrowed"."""
    if record.get("dry_run"):
        return "dry run"
    if record.get("backfill"):
        return "backfill"
    return "narrowed" if is_narrowed(record) else "whole"


def is_whole(record: Record) -> bool:
    """A run of the whole pipeline: what success rates, streaks and health count."""
    return not is_rehearsal(record) and not is_narrowed(record)


def find_record(log_dir: Path, run_id: str) -> Record | None:
    """The record of one run, in whichever layout it was written."""
    path = runid.existing_record(log_dir, run_id)
    return read_record(path) if path is not None else None


def resume_record(log_dir: Path) -> tuple[Path, Record] | None:
    """The newest record that is neither a dry run nor a backfill (--resume)."""
    return next(((path, record) for path, record in records_newest_first(log_dir)
                 if not is_rehearsal(record)), None)


def done_windows(log_dir: Path, wanted: Iterable[tuple[str | None, str]]
                 ) -> set[tuple[str | None, str]]:
    """Those of `wanted` (a window's start and end, as a record holds them) that a
    backfill already ran to `success` or `partial`. Dry runs do not count. Records
    are read newest first until every wanted window is found, or none is left:
    a backfill is rare, and it is finished soon after it failed."""
    left = set(wanted)
    found: set[tuple[str | None, str]] = set()
    for _, record in records_newest_first(log_dir):
        if not left:
            break
        if (not record.get("backfill") or record.get("dry_run")
                or record.get("status") not in ("success", "partial")):
            continue
        window = record.get("window")
        key = window_key(window)
        if key in left:
            left.discard(key)
            found.add(key)
    return found


def window_key(window: Any) -> tuple[str | None, str] | None:
    """(start, end) as UTC instants in ISO form, whatever offset the record used."""
    if not isinstance(window, dict) or not isinstance(window.get("end"), str):
        return None
    try:
        start = window.get("start")
        return (utc_iso(start) if isinstance(start, str) else None, utc_iso(window["end"]))
    except ValueError:
        return None


def utc_iso(text: str) -> str:
    """An ISO 8601 time with offset, as the same instant in UTC."""
    from datetime import datetime, timezone

    moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    if moment.tzinfo is None:
        raise ValueError(text)
    return moment.astimezone(timezone.utc).isoformat()


def moment(value: Any) -> datetime | None:
    """A time a record holds (`started`, `finished`, a window's ends), with its offset;
    None when it is missing, not text, unreadable or without an offset."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = parse_timestamp(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
