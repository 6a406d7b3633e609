"""Delete old runs' logs and records under the log folder.

Settings: "retention": {"days": 30, "keep_last": 10}. A run is older than
`days` when its run id (the time in its log's name) is more than `days` ago;
the newest `keep_last` runs are always kept. Nothing outside the log folder is
touched and symlinks are never followed. Exit 10 when there is nothing to delete.
"""

from __future__ import annotations

import os
import re
import sys
from datetime import datetime, timedelta
from pathlib import Path

import _common as common

RUN_FILE = re.compile(r"^workflow_(\d{8}_\d{2}h\d{2})(?:_\d+)?\.(?:log|json)$")


def run_files(folder: Path) -> dict[str, list[Path]]:
    """Log and record files, by run id; symlinks are left alone."""
    runs: dict[str, list[Path]] = {}
    for entry in os.scandir(folder):
        match = RUN_FILE.match(entry.name)
        if match and entry.is_file(follow_symlinks=False):
            run_id = entry.name.split(".", 1)[0].removeprefix("workflow_")
            runs.setdefault(run_id, []).append(Path(entry.path))
    return runs


def started(run_id: str, tz) -> datetime:
    return datetime.strptime(run_id[:14], "%Y%m%d_%Hh%M").replace(tzinfo=tz)


def main() -> int:
    settings = common.settings()
    policy = settings.get("retention", {})
    days, keep_last = policy.get("days", 30), policy.get("keep_last", 10)
    now = datetime.fromisoformat(os.environ["PIPELINE_RUN_STARTED"])
    runs = run_files(common.log_dir())
    newest_first = sorted(runs, key=lambda r: (started(r, now.tzinfo), r), reverse=True)
    doomed = [r for r in newest_first[keep_last:]
              if r != os.environ["PIPELINE_RUN_ID"]
              and now - started(r, now.tzinfo) > timedelta(days=days)]
    if not doomed:
        print(f"nothing older than {days} days beyond the newest {keep_last} runs")
        return common.SKIP
    for run_id in doomed:
        for path in runs[run_id]:
            print(f"{'would delete' if common.dry_run() else 'deleting'} {path.name}")
            if not common.dry_run():
                path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
