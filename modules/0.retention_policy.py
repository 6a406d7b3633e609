"""Delete old runs' logs and records, and old data files, under the log folder.

Settings: "retention": {"days": 30, "keep_last": 10, "keep": ["data/*"]}.

- A run is its log and its record (`workflow_<run id>.log` / `.json`). It is
  deleted when the time in its run id is more than `days` before this run's
  start, unless it is one of the newest `keep_last` runs, or this run.
- A data file is any file under `data/`. It is deleted when it was last
  modified more than `days` ago and before the oldest run that is kept, unless
  its path (relative to the log folder) matches a `keep` pattern (`*` does not
  cross a `/`). The default keeps the files directly in `data/`: the manifest,
  the latest downloads and outputs, which are replaced in place and are the
  pipeline's state. What piles up below them (`data/quarantine/`, folders of
  dated outputs) ages out. Folders left empty are removed.
- Nothing outside the log folder is touched, a symlink is never followed nor
  deleted, and "exactly `days` old" is kept.

Exit 0 when it deleted something, 10 when there was nothing to delete, 1 when
a file could not be deleted, 2 on a bad setting. PIPELINE_DRY_RUN=1 lists what
it would delete and deletes nothing.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

import _common as common

DEFAULTS: dict[str, Any] = {"days": 30, "keep_last": 10, "keep": ["data/*"]}
RUN_FILE = re.compile(r"^workflow_((\d{8}_\d{2}h\d{2})(?:_\d+)?)\.(?:log|json)$")


@dataclass(frozen=True)
class Doomed:
    path: Path
    why: str
    size: int


def run_files(folder: Path) -> dict[str, list[Path]]:
    """Logs and records directly in the log folder, by run id; not symlinks."""
    runs: dict[str, list[Path]] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            match = RUN_FILE.match(entry.name)
            if match and entry.is_file(follow_symlinks=False):
                runs.setdefault(match.group(1), []).append(Path(entry.path))
    return runs


def run_time(run_id: str, zone: tzinfo) -> datetime:
    return datetime.strptime(run_id[:14], "%Y%m%d_%Hh%M").replace(tzinfo=zone)


def old_runs(runs: dict[str, list[Path]], now: datetime, policy: dict[str, Any],
             zone: tzinfo) -> tuple[list[str], datetime]:
    """The run ids to delete, and the start of the oldest run that is kept."""
    newest_first = sorted(runs, key=lambda r: (run_time(r, zone), r), reverse=True)
    this_run = common.run_id()
    minute = now.replace(second=0, microsecond=0)  # run ids are to the minute
    too_old = [r for r in newest_first[policy["keep_last"]:]
               if r != this_run and minute - run_time(r, zone) > timedelta(days=policy["days"])]
    kept = [run_time(r, zone) for r in newest_first if r not in too_old]
    return too_old, min(kept, default=now)


def kept_by_pattern(relative: str, patterns: list[str]) -> bool:
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
    for folder, _, files in os.walk(top, followlinks=False):
        for name in files:
            path = Path(folder, name)
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode) or kept_by_pattern(
                    path.relative_to(log_dir).as_posix(), keep):
                continue
            changed = datetime.fromtimestamp(info.st_mtime, cutoff.tzinfo)
            if changed < cutoff:
                doomed.append(Doomed(path, f"last changed {changed:%Y-%m-%d %H:%M}",
                                     info.st_size))
    return doomed


def inside(path: Path, folder: Path) -> bool:
    """Whether `path`'s real location is in `folder`'s: no way out through a link."""
    real_parent = Path(os.path.realpath(path.parent))
    return real_parent == folder or folder in real_parent.parents


def delete(doomed: list[Doomed], log_dir: Path) -> int:
    """Delete (or, in a dry run, list) each file; the number that could not be."""
    real_log_dir, failures = Path(os.path.realpath(log_dir)), 0
    verb = "would delete" if common.dry_run() else "deleting"
    for item in doomed:
        relative = item.path.relative_to(log_dir).as_posix()
        if not inside(item.path, real_log_dir) or item.path.is_symlink():
            print(f"not deleting {relative}: it leads out of the log folder", file=sys.stderr)
            failures += 1
            continue
        print(f"{verb} {relative} ({item.why})")
        if common.dry_run():
            continue
        try:
            item.path.unlink()
        except OSError as exc:
            print(f"cannot delete {relative}: {exc.strerror}", file=sys.stderr)
            failures += 1
    return failures


def remove_emptied_folders(doomed: list[Doomed], top: Path) -> None:
    """Folders below `top` that deleting `doomed` left empty (deepest first)."""
    folders = {parent for item in doomed for parent in item.path.parents if top in parent.parents}
    for folder in sorted(folders, key=lambda path: len(path.parts), reverse=True):
        if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
            folder.rmdir()
            print(f"removed the empty folder {folder.relative_to(top.parent).as_posix()}")


def main() -> int:
    policy = common.section("retention", DEFAULTS)
    if not all(isinstance(p, str) for p in policy["keep"]):
        raise common.SettingsError(f"{common.config_path().name}: retention.keep: "
                                   "must be a list of patterns")
    log_dir, zone = common.log_dir(), common.zone()
    now = common.run_started().astimezone(zone)
    runs = run_files(log_dir)
    too_old, oldest_kept = old_runs(runs, now, policy, zone)
    doomed = [Doomed(path, f"run of {run_time(r, zone):%Y-%m-%d %H:%M}", path.stat().st_size)
              for r in too_old for path in sorted(runs[r])]
    cutoff = min(now - timedelta(days=policy["days"]), oldest_kept)
    data = old_data(log_dir, cutoff, policy["keep"])
    doomed += data
    if not doomed:
        print(f"nothing to delete: no run older than {policy['days']} days beyond the newest "
              f"{policy['keep_last']}, no data file older than that")
        return common.SKIP
    failures = delete(doomed, log_dir)
    if not common.dry_run():
        remove_emptied_folders(data, log_dir / "data")
    files = common.counted(len(doomed) - failures, "file")
    size = common.size_text(sum(item.size for item in doomed))
    what = f"{common.counted(len(too_old), 'old run')}, {common.counted(len(data), 'data file')}"
    print(f"{'would delete' if common.dry_run() else 'deleted'} {files} ({size}): {what}")
    return common.FAILED if failures else 0


if __name__ == "__main__":
    common.run(main)
