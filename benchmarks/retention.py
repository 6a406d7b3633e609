"""The retention module pruning many old runs, against `find -delete` of the same files.

    python benchmarks/retention.py [--runs 1000 10000 50000] [--module PATH]

For each size, a log folder holds that many old runs (a log and a record
each) and this run. Each round makes two fresh copies of it (not timed), then
times, turn about, `find DIR -maxdepth 1 -name 'workflow_*' ! -name
'workflow_<this run>*' -delete` and the module with `keep_last` 0, which
deletes exactly the same files. Both run with the same environment
(PYTHONUNBUFFERED=1 as the orchestrator sets it, PYTHONDONTWRITEBYTECODE=1)
and their output goes to a pipe that is drained. Rounds repeat until the
ratios' spread is within 10% of their median (at least 3, at most 15).

Goals: at most 3x `find` at every size, and linear: the time per run at
50,000 runs at most 1.5x the time per run at 1,000. `--module` times another
copy of the module (an older version, to compare).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from _common import PYTHON, REPO, clean_env, verdict

GOAL = 3.0
LINEAR_GOAL = 1.5
THIS_RUN = "20261123_06h00"
STARTED = "2026-11-23T06:00:00+00:00"
MIN_ROUNDS, MAX_ROUNDS, SPREAD = 3, 15, 0.10


def make_runs(log_dir: Path, count: int) -> None:
    """`count` runs, one every 15 minutes, the newest a year before this run."""
    log_dir.mkdir(parents=True)
    newest = datetime(2025, 11, 23, 6, 0)
    for index in range(count):
        run_id = (newest - timedelta(minutes=15 * index)).strftime("%Y%m%d_%Hh%M")
        (log_dir / f"workflow_{run_id}.log").write_text(f"a log line of {run_id}\n" * 20)
        (log_dir / f"workflow_{run_id}.json").write_text(json.dumps({"run_id": run_id}))
    for suffix in (".log", ".json"):
        (log_dir / f"workflow_{THIS_RUN}{suffix}").write_text("this run\n")


def timed(command: Sequence[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode not in (0, 10):
        raise SystemExit(f"{command[1]} exited {result.returncode}: {result.stderr.decode()}")
    return elapsed


def remaining(log_dir: Path) -> list[str]:
    return sorted(path.name for path in log_dir.iterdir())


def measure(root: Path, count: int, module: Path, max_rounds: int
            ) -> tuple[float, float, int]:
    """Medians of find and of the module (seconds), and the rounds it took."""
    master = root / f"master {count}"
    make_runs(master / "logs", count)
    (master / "config.json").write_text(json.dumps({"retention": {"days": 30, "keep_last": 0}}))
    (master / "modules").mkdir()
    shutil.copy(REPO / "modules" / "_common.py", master / "modules" / "_common.py")
    shutil.copy(module, master / "modules" / "0.retention_policy.py")
    base_env = dict(clean_env(), PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    finds, modules, ratios = [], [], []
    while len(ratios) < MIN_ROUNDS or (
            len(ratios) < max_rounds and spread(ratios) > SPREAD):
        for side in ("find", "module"):
            shutil.rmtree(root / side, ignore_errors=True)
            subprocess.run(["cp", "-a", str(master), str(root / side)], check=True)
        logs = root / "find" / "logs"
        finds.append(timed(["find", str(logs), "-maxdepth", "1", "-name", "workflow_*",
                            "!", "-name", f"workflow_{THIS_RUN}*", "-delete"], base_env))
        project = root / "module"
        env = dict(base_env, PIPELINE_CONFIG=str(project / "config.json"),
                   PIPELINE_LOG_DIR=str(project / "logs"), PIPELINE_RUN_ID=THIS_RUN,
                   PIPELINE_RUN_STARTED=STARTED, PIPELINE_DRY_RUN="0", PIPELINE_FORCE="0",
                   PIPELINE_MODULE="0.retention_policy", PIPELINE_LAST_RUN_DATE="")
        modules.append(timed([PYTHON, str(project / "modules" / "0.retention_policy.py")], env))
        ratios.append(modules[-1] / finds[-1])
        if remaining(logs) != remaining(project / "logs"):
            raise SystemExit("the module and find left different files")
    return statistics.median(finds), statistics.median(modules), len(ratios)


def spread(values: list[float]) -> float:
    return (max(values) - min(values)) / statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--module", type=Path, default=REPO / "modules" / "0.retention_policy.py")
    parser.add_argument("--max-rounds", type=int, default=MAX_ROUNDS)
    args = parser.parse_args()
    per_run: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for count in args.runs:
            find, module, rounds = measure(Path(tmp), count, args.module.resolve(),
                                           args.max_rounds)
            per_run[count] = module / count
            ratio = module / find
            print(f"retention: {count:,} runs ({2 * count:,} files): find -delete {find:.3f} s, "
                  f"module {module:.3f} s, ratio {ratio:.2f} (goal <= {GOAL:g}) "
                  f"{verdict(ratio, GOAL)} [{rounds} rounds]")
    small, large = min(per_run), max(per_run)
    if small != large:
        growth = per_run[large] / per_run[small]
        print(f"retention: time per run at {large:,} / at {small:,}: {growth:.2f} "
              f"(goal <= {LINEAR_GOAL:g}) {verdict(growth, LINEAR_GOAL)}")


if __name__ == "__main__":
    main()
