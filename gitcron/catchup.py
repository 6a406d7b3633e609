"""Catch-up: one run per schedule interval that went by without a run.

A schedule that did not fire (a runner outage, GitHub dropping scheduled runs,
a paused repository) would otherwise fold the missed time into one long
window. With `schedule` and `catch_up` set, the time since the last whole run
is cut at the cron line's ticks (cronsim) into one window per interval, oldest
first: `"all"` runs each of them (at most `catch_up_max`, the newest), `"latest"`
only the newest.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Literal, NamedTuple

from gitcron import records
from gitcron import window as windows
from gitcron.codes import FatalError
from gitcron.config import Config, parse_timestamp
from gitcron.window import Window

Mode = Literal["none", "latest", "all"]
MODES: tuple[Mode, ...] = ("none", "latest", "all")


class CatchUp(NamedTuple):
    windows: list[Window]  # what runs, oldest first (the last one ends now)
    missed: int  # intervals that went by without a run (the present one not counted)
    left_out: list[Window]  # intervals past catch_up_max, not run (the oldest)

    def summary(self, mode: str) -> str:
        first = self.windows[0]
        start = windows.iso(first.start) if first.start else "the beginning"
        runs = f"{len(self.windows)} run{'s' if len(self.windows) != 1 else ''}"
        return (f"catch_up {mode}: {self.missed} missed schedule interval"
                f"{'s' if self.missed != 1 else ''} since {start}: {runs}, oldest first")

    def warning(self) -> str:
        """One line naming the intervals left out, and how to run them."""
        first, last = self.left_out[0], self.left_out[-1]
        start = windows.iso(first.start) if first.start else "the beginning"
        return (f"catch_up: {self.missed} missed intervals, more than catch_up_max: "
                f"{len(self.left_out)} not run, from {start} to {windows.iso(last.end)} "
                f"(backfill them with --since {start} --until {windows.iso(last.end)})")


def last_whole_end(log_dir: Path, last_run_date: str | None) -> datetime | None:
    """Where the pipeline's own progress ends: the window's end of the newest whole
    run that ended well (records read newest first, up to that one), else
    `last_run_date`."""
    for _, record in records.records_newest_first(log_dir):
        if not records.is_whole(record) or record.get("status") not in ("success", "partial"):
            continue
        end = (record.get("window") or {}).get("end") or record.get("started")
        try:
            return parse_timestamp(str(end))
        except ValueError:
            continue
    return parse_timestamp(last_run_date) if last_run_date else None


def ticks(cron: str, since: datetime, until: datetime, limit: int) -> list[datetime]:
    """The cron line's times in (since, until], oldest first; at most `limit` + 1
    (the newest kept)."""
    from cronsim import CronSim, CronSimError  # only a catch-up needs cron

    found: list[datetime] = []
    try:
        sim = CronSim(cron, until.astimezone(timezone.utc).replace(microsecond=0)
                      + timedelta(seconds=1), reverse=True)
    except CronSimError as exc:
        raise FatalError(f"schedule: not a cron schedule: {exc}") from None
    for moment in sim:
        if moment <= since or len(found) > limit:
            break
        found.append(moment)
    return found[::-1]


def plan(config: Config, now: datetime) -> CatchUp | None:
    """The runs of a catch-up at `now`, or None when nothing was missed (or catch_up
    is "none"): then the run is an ordinary one."""
    if config.catch_up == "none" or config.schedule is None:
        return None
    since = last_whole_end(config.log_dir, config.last_run_date)
    if since is None:
        return None  # a first run: nothing can have been missed
    found = ticks(config.schedule, since, now, windows.MAX_INTERVALS)
    if len(found) < 2:
        return None  # at most the present tick: nothing missed
    edges = [since, *found[:-1], now]
    every = [Window(windows.in_zone(a, config.tz), windows.in_zone(b, config.tz))
             for a, b in zip(edges, edges[1:], strict=False)]
    if config.catch_up == "latest":
        return CatchUp(every[-1:], len(every) - 1, [])
    keep = config.catch_up_max
    return CatchUp(every[-keep:], len(every) - 1, every[:-keep] if len(every) > keep else [])
