"""The run id: the one home of its shape, and of the names of a run's files.

A run id is the minute the run started, in the config's time zone
(`20261123_06h00`), with `_2`, `_3`... when that minute is taken. Its log is
`workflow_<run id>.log` and its record `workflow_<run id>.json`, both directly
in `log_dir`; its own folder is `runs/<run id>/`. The retention module (a
separate program) keeps a parser of its own; a test checks that the two agree.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import TextIO

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


def claim(log_dir: Path, stub_: str) -> tuple[str, Path, TextIO]:
    """Take the first free run id of the minute `stub_`, whichever engine asks
    (the local runner, or the start task of an Airflow DAG run).

    An id is taken by creating its log exclusively; one whose record exists
    (its log pruned or moved) is never taken again. Returns the id, the log's
    path and the log, open for writing.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    for n in range(1, MAX_PER_MINUTE):
        run_id = with_suffix(stub_, n)
        path = log_dir / log_name(run_id)
        if (log_dir / record_name(run_id)).exists():
            continue
        try:
            handle = open(path, "x", encoding="utf-8", errors="replace")  # noqa: SIM115 (the caller closes it)
        except FileExistsError:
            continue
        return run_id, path, handle
    raise FileExistsError(f"{log_dir}: no free log name for {stub_}")


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
