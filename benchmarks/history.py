"""Per-run costs as the history grows: 0, 1,000 and 10,000 earlier runs.

    python benchmarks/history.py [--rounds 7]

One function per measurement; each prints one line per history size with the
ratio to the run with no history. Goal: at most 1.2 at every size.

- commit_back: a whole `orchestrator.py --push` process, the shipped
  `git.paths` ("data and logs") holding every earlier run's log and record,
  committed, against a bare remote on disk. The sizes run turn about, so that
  drift on the machine hits them alike.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from contextlib import ExitStack
from pathlib import Path

from _common import ORCHESTRATOR, PYTHON, verdict
from push import bench_env, build, earlier_runs, timed

SIZES = (0, 1_000, 10_000)
GOAL = 1.2


def commit_back(rounds: int) -> None:
    with ExitStack() as stack:
        setups = {}
        for size in SIZES:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            env = bench_env(tmp)
            setups[size] = (build(tmp, env, earlier_runs(size)), env)
        command = [PYTHON, str(ORCHESTRATOR), "--push"]
        times: dict[int, list[float]] = {size: [] for size in SIZES}
        for work, env in setups.values():
            timed(command, work, env)  # warm each alike
        for _ in range(rounds):
            for size, (work, env) in setups.items():
                times[size].append(timed(command, work, env))
    base = statistics.median(times[0])
    for size in SIZES:
        median = statistics.median(times[size])
        ratio = median / base
        print(f"history: commit-back, a pushed run at {size:,} earlier runs: "
              f"{1000 * median:.0f} ms, {ratio:.2f}x the run at 0 (goal <= {GOAL}) "
              f"{verdict(ratio, GOAL)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    commit_back(args.rounds)


if __name__ == "__main__":
    main()
