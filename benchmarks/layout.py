"""The log layout after years: the cost of a pushed run, and the size of folders.

    python benchmarks/layout.py [--rounds 7] [--quick]

1. A whole `orchestrator.py --push` process (one no-op module, the shipped
   `git.paths`, "data and logs", against a bare remote on disk) with 10,000 and
   50,000 earlier runs (logs and records committed, 5 minutes apart) against
   the same with none, like with like: the same layout on both sides. Goal for
   `"log_layout": "daily"`: at most 1.2x at both sizes. The flat layout at
   10,000 is measured the same way, for comparison (no goal: it is what the
   daily layout replaces). The sizes run turn about (paired rounds), in batches
   of --rounds pairs until a batch moves the median paired ratio by at most 3%.
   --quick leaves out the 50,000 case.
2. Ten years of 5-minute runs (GitHub's shortest schedule) with 30-day
   retention, simulated by names: each day's runs get their log, record and run
   folder at the paths gitcron/runid.py gives, the day that falls out of the 30
   is removed, and folders left empty go (as modules/0.retention_policy.py
   does). Goal: no folder ever holds more than 1,000 entries (GitHub's web view
   of a folder stops there).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from _common import ORCHESTRATOR, PYTHON, REPO, alternate, verdict
from push import LOGS, bench_env, build, git, timed

sys.path.insert(0, str(REPO))

from gitcron import runid

GROWTH_GOAL = 1.2
FOLDER_GOAL = 1000
MAX_BATCHES = 4
EVERY = timedelta(minutes=5)
# The earlier runs end the day before the measured runs start, whatever the date.
LAST = datetime(2026, 1, 1)


def earlier_runs(runs: int, layout: runid.Layout) -> list[str]:
    """The logs and records of `runs` runs, 5 minutes apart, in `layout`."""
    names = []
    for n in range(runs):
        run_id = runid.stub(LAST - EVERY * (n + 1))
        for path in (runid.log_path(Path(LOGS), run_id, layout),
                     runid.record_path(Path(LOGS), run_id, layout)):
            names.append(path.as_posix())
    return names


def project(tmp: Path, runs: int, layout: runid.Layout) -> tuple[Path, dict[str, str]]:
    env = bench_env(tmp)
    work = build(tmp, env, earlier_runs(runs, layout))
    config = json.loads((work / "config.json").read_text())
    (work / "config.json").write_text(json.dumps(dict(config, log_layout=layout), indent=2) + "\n")
    git(work, env, "commit", "-q", "-am", "layout")
    git(work, env, "push", "-q", "origin", "main")
    return work, env


def pushed_run(runs: int, layout: runid.Layout, rounds: int, goal: float | None) -> None:
    """A pushed run at `runs` earlier runs against one at none, turn about."""
    command = [PYTHON, str(ORCHESTRATOR), "--push"]
    with tempfile.TemporaryDirectory() as none, tempfile.TemporaryDirectory() as many:
        empty, empty_env = project(Path(none), 0, layout)
        full, full_env = project(Path(many), runs, layout)
        timed(command, empty, empty_env), timed(command, full, full_env)  # warm both alike
        base, mine = alternate(rounds, lambda: timed(command, empty, empty_env),
                               lambda: timed(command, full, full_env), MAX_BATCHES)
    ratio = mine / base
    judged = f"(goal <= {goal}) {verdict(ratio, goal)}" if goal else "(for comparison)"
    print(f"layout: {layout}, a pushed run at {runs:,} earlier runs {1000 * mine:.0f} ms, at 0 "
          f"{1000 * base:.0f} ms, ratio {ratio:.2f} {judged}")


class Tree:
    """Folders by name only: entries per folder, with empty folders removed."""

    def __init__(self) -> None:
        self.children: dict[str, dict[str, int]] = defaultdict(dict)
        self.largest = (0, "")

    def add(self, path: str) -> None:
        while "/" in path:
            parent, name = path.rsplit("/", 1)
            entries = self.children[parent]
            entries[name] = entries.get(name, 0) + 1
            if len(entries) > self.largest[0]:
                self.largest = (len(entries), parent)
            path = parent

    def remove(self, path: str) -> None:
        while "/" in path:
            parent, name = path.rsplit("/", 1)
            entries = self.children[parent]
            entries[name] -= 1
            if entries[name]:
                return
            del entries[name]
            path = parent


def day_paths(day: datetime, layout: runid.Layout) -> list[str]:
    """A day of 5-minute runs: each one's log, record and run folder."""
    top = Path(LOGS)
    paths = []
    for n in range(24 * 60 // 5):
        run_id = runid.stub(day + EVERY * n)
        paths += [runid.log_path(top, run_id, layout).as_posix(),
                  runid.record_path(top, run_id, layout).as_posix(),
                  runid.run_dir(top, run_id, layout).as_posix() + "/out.csv"]
    return paths


def ten_years(layout: runid.Layout, years: int = 10, days_kept: int = 30) -> None:
    tree, kept = Tree(), []
    first = datetime(2026, 1, 1)
    for n in range(round(365.25 * years)):
        paths = day_paths(first + timedelta(days=n), layout)
        for path in paths:
            tree.add(path)
        kept.append(paths)
        if len(kept) > days_kept + 1:  # today and the 30 days before it stay
            for path in kept.pop(0):
                tree.remove(path)
    count, folder = tree.largest
    span = f"{years} year{'s' if years > 1 else ''}"
    print(f"layout: {layout}, {span} of 5-minute runs, {days_kept}-day retention: the "
          f"largest folder ({folder}/) reached {count:,} entries (goal <= {FOLDER_GOAL:,}) "
          f"{verdict(count, FOLDER_GOAL)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="leave out the 50,000 case")
    args = parser.parse_args()
    measurements: list[Callable[[], None]] = [
        lambda: ten_years("daily"),
        lambda: ten_years("flat", years=1),
        lambda: pushed_run(10_000, "daily", args.rounds, GROWTH_GOAL),
        lambda: pushed_run(10_000, "flat", args.rounds, None),
    ]
    if not args.quick:
        measurements.append(lambda: pushed_run(50_000, "daily", args.rounds, GROWTH_GOAL))
    for measure in measurements:
        measure()


if __name__ == "__main__":
    main()
