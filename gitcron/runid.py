"""The run id: the one home of its shape, and of the names of a run's files.

A run id is the minute the run started, in the config's time zone
(`20261123_06h00`), with `_2`, `_3`... when that minute is taken. Its log is
`workflow_<run id>.log` and its record `workflow_<run id>.json`, its own folder
`runs/<run id>/`. Where they are is the log layout:

- "flat" (the default when unset): log and record directly in `log_dir`, the
  folder in `runs/`;
- "daily": in the folder of the run's day, `<log_dir>/YYYY/MM/DD/` and
  `<log_dir>/runs/YYYY/MM/DD/<run id>/`, so that no folder grows past a day of
  runs (GitHub's web view of a folder stops at 1,000 entries).

Readers take both: a repository switches by setting the key, without moving a
file. The retention module (a separate program) keeps a parser of its own; a
test checks that the two agree.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Literal, TextIO

Layout = Literal["flat", "daily"]
LAYOUTS: tuple[Layout, ...] = ("flat", "daily")

STUB_FORMAT = "%Y%m%d_%Hh%M"
PREFIX = "workflow_"
LOG_SUFFIX = ".log"
RECORD_SUFFIX = ".json"
RUNS_FOLDER = "runs"
LATEST = "latest"
BADGE = "badge.json"  # in log_dir: the pipeline's state, for a README badge
# A run id: its minute, then an optional `_N` (N >= 2).
# ASCII digits only, and the whole name (fullmatch: `$` would let a trailing newline in).
RUN_ID = re.compile(r"([0-9]{8}_[0-9]{2}h[0-9]{2})(?:_([1-9][0-9]*))?")
# A run's file: its log or its record.
# More runs than this in one minute is a loop gone wrong, not a schedule.
MAX_PER_MINUTE = 10_000
RUN_FILE = re.compile(
    rf"{PREFIX}([0-9]{{8}}_[0-9]{{2}}h[0-9]{{2}}(?:_[1-9][0-9]*)?)(?:{LOG_SUFFIX}|{RECORD_SUFFIX})"
)


def stub(moment: datetime) -> str:
    """The run id of a run that starts at `moment` (before any `_N`)."""
    return moment.strftime(STUB_FORMAT)


def with_suffix(stub_: str, n: int) -> str:
    """The n-th run id of a minute: the stub itself for n = 1, else `<stub>_<n>`."""
    return stub_ if n == 1 else f"{stub_}_{n}"


def claim(log_dir: Path, stub_: str, layout: Layout = "flat") -> tuple[str, Path, TextIO]:
    """Take the first free run id of the minute `stub_`, whichever engine asks
    (the local runner, or the start task of an Airflow DAG run).

    An id is taken by creating its log exclusively; one whose log or record
    exists in either layout (a log pruned or moved, a layout switched within
    the minute) is never taken again. Returns the id, the log's path and the
    log, open for writing.
    """
    folder(log_dir, stub_, layout).mkdir(parents=True, exist_ok=True)
    for n in range(1, MAX_PER_MINUTE):
        run_id = with_suffix(stub_, n)
        if any(path.exists() for other in LAYOUTS if other != layout
               for path in (log_path(log_dir, run_id, other), record_path(log_dir, run_id, other))):
            continue
        if record_path(log_dir, run_id, layout).exists():
            continue
        path = log_path(log_dir, run_id, layout)
        try:
            handle = open(path, "x", encoding="utf-8", errors="replace")  # noqa: SIM115 (the caller closes it)
        except FileExistsError:
            continue
        return run_id, path, handle
    raise FileExistsError(f"{log_dir}: no free log name for {stub_}")


def day(run_id: str) -> str:
    """The run's day as folders, `2026/11/23`, from its id (its own minute, local)."""
    return f"{run_id[0:4]}/{run_id[4:6]}/{run_id[6:8]}"


def folder(log_dir: Path, run_id: str, layout: Layout) -> Path:
    """Where a run's log and record are."""
    return log_dir / day(run_id) if layout == "daily" else log_dir


def log_path(log_dir: Path, run_id: str, layout: Layout) -> Path:
    return folder(log_dir, run_id, layout) / log_name(run_id)


def record_path(log_dir: Path, run_id: str, layout: Layout) -> Path:
    return folder(log_dir, run_id, layout) / record_name(run_id)


def run_dir(log_dir: Path, run_id: str, layout: Layout) -> Path:
    """The run's own folder (PIPELINE_RUN_DIR)."""
    return log_dir / RUNS_FOLDER / (f"{day(run_id)}/{run_id}" if layout == "daily" else run_id)


def latest(log_dir: Path) -> Path:
    """`runs/latest`, in every layout: a link to the newest run folder."""
    return log_dir / RUNS_FOLDER / LATEST


def latest_target(run_id: str, layout: Layout) -> str:
    """What `runs/latest` holds for a run: its folder, relative to `runs/`."""
    return f"{day(run_id)}/{run_id}" if layout == "daily" else run_id


def existing_record(log_dir: Path, run_id: str) -> Path | None:
    """A run's record wherever it is, in either layout (daily first), or None."""
    if not RUN_ID.fullmatch(run_id):
        return None
    for layout in ("daily", "flat"):
        path = record_path(log_dir, run_id, layout)  # type: ignore[arg-type]
        if path.is_file():
            return path
    return None


# Folder names of the daily layout: a year, then a month, then a day.
YEAR = re.compile(r"[0-9]{4}")
MONTH_OR_DAY = re.compile(r"[0-9]{2}")


def log_name(run_id: str) -> str:
    return f"{PREFIX}{run_id}{LOG_SUFFIX}"


def record_name(run_id: str) -> str:
    return f"{PREFIX}{run_id}{RECORD_SUFFIX}"


def of_file(name: str) -> str | None:
    """The run id of a log or record file name, or None for any other name."""
    match = RUN_FILE.fullmatch(name)
    return match.group(1) if match else None


def parse(run_id: str) -> tuple[datetime, int]:
    """(the minute, as a naive local time; n): `20261123_06h00_3` -> (06:00, 3).

    ValueError for anything that is not a run id.
    """
    match = RUN_ID.fullmatch(run_id)
    if not match:
        raise ValueError(f"not a run id: {run_id!r}")
    return datetime.strptime(match.group(1), STUB_FORMAT), int(match.group(2) or 1)


def stub_of(run_id: str) -> str:
    """The run id without its `_N`."""
    return parse(run_id)[0].strftime(STUB_FORMAT)


def sort_key(run_id: str) -> tuple[str, int]:
    """Run ids in the order they were taken (`_10` after `_9`); names sort that way
    but for the suffix, which this key compares as a number.

    The regex alone, no strptime: history readers sort 10,000 names with it, and
    strptime costs more than the rest of `--resume --list` together. ValueError
    for anything that is not a run id.
    """
    match = RUN_ID.fullmatch(run_id)
    if not match:
        raise ValueError(f"not a run id: {run_id!r}")
    return match.group(1), int(match.group(2) or 1)
