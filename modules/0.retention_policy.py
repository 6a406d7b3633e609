"""Delete old runs (logs, records, run folders) and old data files under the log folder.

Settings: "retention": {"days": 30, "keep_last": 10, "keep": ["data/*"]}.

- A run is its log, its record and its folder (`workflow_<run id>.log` /
  `.json`, `runs/<run id>/`; with `"log_layout": "daily"` in the day's folders,
  `YYYY/MM/DD/` and `runs/YYYY/MM/DD/`: both layouts are read, whichever is
  set). It is deleted when the time in its run id is more
  than `days` before this run's start, unless it is one of the newest
  `keep_last` runs, or this run. A run folder goes whole, with its run; one
  with no log or record of its own is aged by its name like any run.
  `runs/latest` stays while it points at a kept run; a `latest` left pointing
  at nothing is removed.
- A data file is any file under `data/`. It is deleted when it was last
  modified more than `days` ago and before the oldest run that is kept, unless
  its path (relative to the log folder) matches a `keep` pattern (`*` does not
  cross a `/`). The default keeps the files directly in `data/`: the manifest,
  the latest downloads and outputs, which are replaced in place and are the
  pipeline's state. What piles up below them (`data/quarantine/`, folders of
  dated outputs) ages out. Folders left empty are removed, under `data/` and
  the day, month and year folders of the daily layout.
- Nothing outside the log folder is touched, a symlink is never followed nor
  deleted (but for a dangling `runs/latest`), and "exactly `days` old" is kept.

Exit 0 when it deleted something, 10 when there was nothing to delete, 1 when
a file could not be deleted, 2 on a bad setting. PIPELINE_DRY_RUN=1 lists what
it would delete and deletes nothing.

The cost is linear in the number of files: each run id is parsed once, and
each folder's real location is looked up once, not each file's.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from datetime import datetime, timedelta
from pathlib import Path

import _common as common

if common.TYPE_CHECKING:  # typing is for annotations only: not imported on every run
    from typing import Any

DEFAULTS: dict[str, Any] = {"days": 30, "keep_last": 10, "keep": ["data/*"]}

# The run id's shape, as the orchestrator writes it (docs/logs-and-records.md):
# the minute the run started, then `_N` (N >= 2) when that minute was
# taken. This program keeps its own parser; a test checks that it agrees with
# the orchestrator's.
STUB_FORMAT = "%Y%m%d_%Hh%M"
RUN_ID = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})_([0-9]{2})h([0-9]{2})(?:_([1-9][0-9]*))?")
PREFIX = "workflow_"
SUFFIXES = (".log", ".json")
RUNS = "runs"
LATEST = "latest"
# The daily layout's folders: `YYYY/MM/DD/` (gitcron/runid.py).
YEAR = re.compile(r"[0-9]{4}")
MONTH_OR_DAY = re.compile(r"[0-9]{2}")


def parse_run_id(text: str) -> tuple[datetime, int]:
    """(the minute, naive; n): `20261123_06h00_3` -> (2026-11-23 06:00, 3).

    ValueError for anything that is not a run id, such as a 30th of February.
    """
    match = RUN_ID.fullmatch(text)
    if not match:
        raise ValueError(f"not a run id: {text!r}")
    year, month, day, hour, minute, n = match.groups()
    return datetime(int(year), int(month), int(day), int(hour), int(minute)), int(n or 1)


def run_id_of_file(name: str) -> str | None:
    """The run id of a log or record file name, or None for any other name."""
    candidate = shaped_like_run_file(name)
    return checked_run_id(candidate) if candidate else None


def shaped_like_run_file(name: str) -> str | None:
    """What would be the run id of a log or record; not yet checked to be a real minute."""
    if not name.startswith(PREFIX):
        return None
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[len(PREFIX):-len(suffix)]
    return None


def checked_run_id(text: str) -> str | None:
    try:
        parse_run_id(text)
    except ValueError:
        return None
    return text


# Plain classes, not dataclasses: importing `dataclasses` (inspect, ast) costs
# more than parsing a thousand run ids, and this module runs on every run.
class Run:
    """What is on disk of one run: files directly in the log folder, and its folder."""

    __slots__ = ("started", "n", "files", "folder")

    def __init__(self, started: datetime, n: int) -> None:
        self.started = started  # naive, in the config's time zone
        self.n = n
        # (the entry, its folder relative to the log folder: "" or "2026/11/23/")
        self.files: list[tuple[os.DirEntry[str], str]] = []
        self.folder: tuple[os.DirEntry[str], str] | None = None


class Doomed:
    """A file, or a run folder, to delete. Paths are strings: pathlib would cost
    more than the deleting itself when there are thousands."""

    __slots__ = ("path", "relative", "why", "size", "folder")

    def __init__(self, path: str, relative: str, why: str, size: int, folder: bool = False
                 ) -> None:
        self.path = path
        self.relative = relative  # to the log folder, with "/"
        self.why = why
        self.size = size
        self.folder = folder  # a run folder, deleted whole


def find_runs(log_dir: Path) -> dict[str, Run]:
    """Every run by id: its logs and records, and its folder under runs/, in both
    layouts; not symlinks."""
    runs: dict[str, Run] = {}
    for where, entries in with_day_folders(log_dir, ""):
        for entry in entries:
            # run_entry parses the id, once per run: not run_id_of_file, which parses per file.
            run_id = shaped_like_run_file(entry.name)
            if run_id and entry.is_file(follow_symlinks=False) and (run := run_entry(runs, run_id)):
                run.files.append((entry, where))
    folder = log_dir / RUNS
    if folder.is_symlink():
        print(f"{RUNS}/ is a symlink: its run folders are not pruned")
        return runs
    for where, entries in with_day_folders(folder, f"{RUNS}/"):
        for entry in entries:
            if entry.is_dir(follow_symlinks=False) and (run := run_entry(runs, entry.name)):
                run.folder = (entry, where)
    return runs


def with_day_folders(top: Path, where: str) -> list[tuple[str, list[os.DirEntry[str]]]]:
    """The entries of `top` and of its `YYYY/MM/DD` folders (not symlinks), each with
    its folder relative to the log folder."""
    entries = scan(top)
    found = [(where, entries)]
    for year in subfolders(entries, YEAR):
        for month in subfolders(scan(Path(year.path)), MONTH_OR_DAY):
            for day in subfolders(scan(Path(month.path)), MONTH_OR_DAY):
                found.append((f"{where}{year.name}/{month.name}/{day.name}/",
                              scan(Path(day.path))))
    return found


def subfolders(entries: list[os.DirEntry[str]], name: re.Pattern[str]
               ) -> list[os.DirEntry[str]]:
    return [e for e in entries if name.fullmatch(e.name) and e.is_dir(follow_symlinks=False)]


def scan(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except (FileNotFoundError, NotADirectoryError):
        return []


def run_entry(runs: dict[str, Run], run_id: str) -> Run | None:
    """The run of this id, added if new; None if `run_id` is not one (a 30th of
    February has a run id's shape, but no run has it)."""
    run = runs.get(run_id)
    if run is None:
        try:
            started, n = parse_run_id(run_id)
        except ValueError:
            return None
        run = runs[run_id] = Run(started, n)
    return run


def old_runs(runs: dict[str, Run], now: datetime, policy: dict[str, Any]
             ) -> tuple[list[str], datetime]:
    """The run ids to delete, oldest first, and the start of the oldest run that is kept."""
    newest_first = sorted(runs, key=lambda r: (runs[r].started, runs[r].n), reverse=True)
    this_run = common.run_id()
    # Run ids are to the minute, so is the comparison; "exactly `days` old" is kept.
    cutoff = now.replace(second=0, microsecond=0, tzinfo=None) - timedelta(days=policy["days"])
    too_old = [r for r in newest_first[policy["keep_last"]:]
               if r != this_run and runs[r].started < cutoff]
    doomed = set(too_old)
    kept = [runs[r].started for r in newest_first if r not in doomed]
    oldest_kept = min(kept).replace(tzinfo=now.tzinfo) if kept else now
    return too_old[::-1], oldest_kept


def run_doomed(run_id: str, run: Run) -> list[Doomed]:
    why = f"run of {run.started:%Y-%m-%d %H:%M}"
    doomed = [Doomed(entry.path, where + entry.name, why,
                     entry.stat(follow_symlinks=False).st_size)
              for entry, where in sorted(run.files, key=lambda e: e[1] + e[0].name)]
    if run.folder is not None:
        entry, where = run.folder
        doomed.append(Doomed(entry.path, f"{where}{run_id}/", why, tree_size(entry.path),
                             folder=True))
    return doomed


def tree_size(folder: str) -> int:
    total = 0
    for parent, _, files in os.walk(folder, followlinks=False):
        for name in files:
            try:
                total += os.lstat(os.path.join(parent, name)).st_size
            except OSError:
                continue
    return total


def kept_by_pattern(relative: str, patterns: list[str]) -> bool:
    import fnmatch

    parts = relative.split("/")
    return any(len(parts) == len(p.split("/")) and all(
        fnmatch.fnmatchcase(part, pat) for part, pat in zip(parts, p.split("/"), strict=True))
        for p in patterns)


def old_data(log_dir: Path, cutoff: datetime, keep: list[str]) -> list[Doomed]:
    """Regular files under data/ last changed before `cutoff`, but for `keep`."""
    doomed, top = [], log_dir / "data"
    if top.is_symlink():
        print("data/ is a symlink: its files are not pruned")
        return []
    limit = cutoff.timestamp()
    for folder, _, files in os.walk(top, followlinks=False):
        prefix = os.path.relpath(folder, log_dir).replace(os.sep, "/") + "/"
        for name in files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if info.st_mtime >= limit or not stat.S_ISREG(info.st_mode) or kept_by_pattern(
                    prefix + name, keep):
                continue
            changed = datetime.fromtimestamp(info.st_mtime, cutoff.tzinfo)
            doomed.append(Doomed(path, prefix + name, f"last changed {changed:%Y-%m-%d %H:%M}",
                                 info.st_size))
    return doomed


def shown(relative: str) -> str:
    """A path for messages: a name that is not UTF-8 is shown with its odd bytes escaped."""
    return relative.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class Deleter:
    """Deletes (or, in a dry run, lists) paths in the log folder, never through a link.

    `os.unlink` removes a link, not what it points at, and `shutil.rmtree`
    refuses a link and does not follow those inside; what is left to check is
    that no folder on the way is a link out of the log folder.
    """

    def __init__(self, log_dir: Path) -> None:
        self.real_log_dir = os.path.realpath(log_dir)
        self.dry_run = common.dry_run()
        self.verb = "would delete" if self.dry_run else "deleting"
        self.real_parents: dict[str, bool] = {}
        self.lines: list[str] = []
        self.failed: set[str] = set()

    def inside(self, path: str) -> bool:
        """Whether `path`'s folder really is in the log folder (one look per folder)."""
        parent = os.path.dirname(path.rstrip(os.sep))
        if parent not in self.real_parents:
            real = os.path.realpath(parent)
            self.real_parents[parent] = real == self.real_log_dir or real.startswith(
                self.real_log_dir.rstrip(os.sep) + os.sep)
        return self.real_parents[parent]

    def delete(self, item: Doomed) -> None:
        if not self.inside(item.path):
            self.fail(item, f"not deleting {shown(item.relative)}: it leads out of the log folder")
            return
        self.lines.append(f"{self.verb} {shown(item.relative)} ({item.why})")
        if self.dry_run:
            return
        try:
            if item.folder:
                import shutil  # run folders are few: most runs need no shutil

                shutil.rmtree(item.path)
            else:
                os.unlink(item.path)
        except OSError as exc:
            self.fail(item, f"cannot delete {shown(item.relative)}: {exc.strerror or exc}")

    def fail(self, item: Doomed, message: str) -> None:
        self.flush()
        print(message, file=sys.stderr)
        self.failed.add(item.path)

    def note(self, line: str) -> None:
        self.lines.append(line)

    def flush(self) -> None:
        """One write for many lines: a prune of thousands of files is not thousands of writes."""
        if self.lines:
            sys.stdout.write("\n".join(self.lines) + "\n")
            sys.stdout.flush()
            self.lines.clear()


def dangling_latest(log_dir: Path, deleter: Deleter, doomed: list[Doomed]) -> None:
    """Remove `runs/latest` if it points at nothing once `doomed` is gone."""
    latest = log_dir / RUNS / LATEST
    if not latest.is_symlink():
        return
    gone = {os.path.normpath(item.path) for item in doomed if item.folder}
    target = os.path.normpath(os.path.join(latest.parent, os.readlink(latest)))
    if target in gone or not os.path.exists(latest):
        what = "it would point at nothing" if deleter.dry_run else "it points at nothing"
        deleter.note(f"{deleter.verb} {RUNS}/{LATEST} ({what})")
        if not deleter.dry_run:
            latest.unlink(missing_ok=True)


def remove_emptied_folders(deleted: list[Doomed], log_dir: Path, deleter: Deleter) -> None:
    """Folders that deleting `deleted` left empty (deepest first): below data/, and
    the daily layout's day, month and year folders (never runs/ nor data/ itself)."""
    tops = [os.path.join(log_dir, name) for name in ("data", RUNS)] + [str(log_dir)]
    folders: set[str] = set()
    for item in deleted:
        folder = os.path.dirname(item.path.rstrip(os.sep))
        top = next((t for t in tops if folder.startswith(t + os.sep)), None)
        while (top is not None and folder.startswith(top + os.sep) and folder not in tops
               and folder not in folders):
            folders.add(folder)
            folder = os.path.dirname(folder)
    for folder in sorted(folders, key=lambda path: path.count(os.sep), reverse=True):
        if os.path.isdir(folder) and not os.path.islink(folder) and not os.listdir(folder):
            os.rmdir(folder)
            relative = os.path.relpath(folder, log_dir).replace(os.sep, "/")
            deleter.note(f"removed the empty folder {shown(relative)}")


def read_policy() -> dict[str, Any]:
    policy = common.section("retention", DEFAULTS)
    if not all(isinstance(p, str) for p in policy["keep"]):
        raise common.SettingsError(f"{common.config_path().name}: retention.keep: "
                                   "must be a list of patterns")
    return policy


def main() -> int:
    policy = read_policy()
    log_dir, zone = common.log_dir(), common.zone()
    now = common.run_started().astimezone(zone)
    runs = find_runs(log_dir)
    too_old, oldest_kept = old_runs(runs, now, policy)
    doomed = [item for r in too_old for item in run_doomed(r, runs[r])]
    cutoff = min(now - timedelta(days=policy["days"]), oldest_kept)
    data = old_data(log_dir, cutoff, policy["keep"])
    doomed += data
    deleter = Deleter(log_dir)
    dangling_latest(log_dir, deleter, doomed)  # before the folders go: it reads the link
    if not doomed and not deleter.lines:
        print(f"nothing to delete: no run older than {policy['days']} days beyond the newest "
              f"{policy['keep_last']}, no data file older than that")
        return common.SKIP
    for item in doomed:
        deleter.delete(item)
    deleted = [item for item in doomed if item.path not in deleter.failed]
    if not deleter.dry_run:
        remove_emptied_folders(deleted, log_dir, deleter)
    deleter.flush()
    summarize(deleted, too_old, data, deleter.dry_run)
    return common.FAILED if deleter.failed else 0


def summarize(deleted: list[Doomed], too_old: list[str], data: list[Doomed],
              dry_run: bool) -> None:
    files = common.counted(sum(not item.folder for item in deleted), "file")
    folders = sum(item.folder for item in deleted)
    if folders:
        files += f" and {common.counted(folders, 'run folder')}"
    size = common.size_text(sum(item.size for item in deleted))
    what = f"{common.counted(len(too_old), 'old run')}, {common.counted(len(data), 'data file')}"
    print(f"{'would delete' if dry_run else 'deleted'} {files} ({size}): {what}")


if __name__ == "__main__":
    common.run(main)
