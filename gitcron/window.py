"""A run's time window `[start, end)`, and the intervals of a backfill.

Computed once per run, in the config's time zone, and handed to every module
as PIPELINE_WINDOW_START / PIPELINE_WINDOW_END. Arithmetic is done on UTC
instants, so a window across a change of offset (DST) is still exactly the
requested length in real time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import NamedTuple

from gitcron.codes import FatalError
from gitcron.config import parse_timestamp

DURATION = re.compile(r"^(\d+)([mhd])$", re.ASCII)
UNITS = {"m": "minutes", "h": "hours", "d": "days"}
MAX_INTERVALS = 10_000  # a backfill of more runs than this is a typo in --every


class Window(NamedTuple):
    start: datetime | None  # None: everything before `end` (no last_run_date yet)
    end: datetime

    def as_record(self) -> dict[str, str | None]:
        return {"start": iso(self.start) if self.start else None, "end": iso(self.end)}


def now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def in_zone(moment: datetime, tz: tzinfo) -> datetime:
    """The same instant, shown in `tz` (its offset there at that instant)."""
    return moment.astimezone(timezone.utc).astimezone(tz)


def parse_time(text: str, option: str, tz: tzinfo) -> datetime:
    """ISO 8601 date or date-time; without an offset it is a time in `tz`."""
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text, re.ASCII):
            moment = datetime.combine(date.fromisoformat(text), datetime.min.time())
        else:
            moment = parse_timestamp(text)
    except ValueError:
        raise FatalError(f"{option}: {text!r} is not an ISO 8601 date or date-time "
                         "(e.g. 2026-11-23 or 2026-11-23T06:00:00+01:00)") from None
    try:
        if moment.tzinfo is None:
            moment = _local(moment, text, option, tz)
        return in_zone(moment, tz)
    except OverflowError:
        raise FatalError(f"{option}: {text!r} is outside the range of dates") from None


def _local(wall: datetime, text: str, option: str, tz: tzinfo) -> datetime:
    """A wall-clock time of `tz`; one that the clocks skip (spring) or show twice
    (autumn) is refused, with the UTC forms to choose from: a backfill must not
    quietly move by an hour."""
    first, second = (in_zone(wall.replace(tzinfo=tz, fold=fold), timezone.utc)
                     for fold in (0, 1))
    if first == second and in_zone(first, tz).replace(tzinfo=None) == wall:
        return wall.replace(tzinfo=tz)
    utc = sorted({_utc(first), _utc(second)})
    if in_zone(first, tz).replace(tzinfo=None) != wall:
        raise FatalError(f"{option}: {text!r} does not exist in {tz} (the clocks skip it): "
                         f"give the time in UTC, e.g. {' or '.join(utc)}")
    raise FatalError(f"{option}: {text!r} happens twice in {tz} (the clocks go back): "
                     f"give the time in UTC, {utc[0]} or {utc[1]}")


def _utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_every(text: str) -> timedelta:
    match = DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise FatalError(f"--every: {text!r} is not a duration such as 30m, 6h or 1d")
    try:
        return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})
    except OverflowError:
        raise FatalError(f"--every: {text!r} is longer than any window can be") from None


def default(last_run_date: str | None, started: datetime, minutes: float | None,
            tz: tzinfo) -> Window:
    """From `last_run_date` to the run's start; or the last `minutes` before it."""
    end = in_zone(started, tz)
    if minutes is not None:
        # In UTC: an aware datetime's own arithmetic is wall-clock time across DST.
        start = started.astimezone(timezone.utc) - timedelta(minutes=minutes)
        return Window(in_zone(start, tz), end)
    start = in_zone(parse_timestamp(last_run_date), tz) if last_run_date else None
    return Window(start, end)


def explicit(since: datetime, until: datetime) -> Window:
    if since >= until:
        raise FatalError(f"--since/--until: the window's start ({iso(since)}) is not before "
                         f"its end ({iso(until)})")
    return Window(since, until)


def intervals(since: datetime, until: datetime, every: timedelta, tz: tzinfo
              ) -> Iterator[Window]:
    """[since, until) cut into `every`-long windows, oldest first; the last may be shorter."""
    explicit(since, until)
    count = -(-(until.astimezone(timezone.utc) - since.astimezone(timezone.utc)) // every)
    if count > MAX_INTERVALS:
        raise FatalError(f"--every: {count} intervals; at most {MAX_INTERVALS} in one backfill")
    start = since.astimezone(timezone.utc)
    stop = until.astimezone(timezone.utc)
    while start < stop:
        end = min(start + every, stop)
        yield Window(in_zone(start, tz), in_zone(end, tz))
        start = end


def from_record(value: object, tz: tzinfo) -> Window | None:
    """The window a run record holds (for --resume), or None if it holds none."""
    if not isinstance(value, dict) or not isinstance(value.get("end"), str):
        return None
    try:
        start = value.get("start")
        return Window(in_zone(parse_timestamp(start), tz) if isinstance(start, str) else None,
                      in_zone(parse_timestamp(value["end"]), tz))
    except (ValueError, OverflowError):
        return None
