"""The cost of reading the history: `--list` against `--resume --list` and `history`.

    python benchmarks/history_read.py [--max-batches 6] [--sizes 0 1000 10000]

With 0, 1,000 and 10,000 earlier runs (a record and a log each) in the log
folder, whole processes are timed in pairs, `--list` then the subject, turn
about, in batches of 10 pairs until two batches agree within 3%. Both sides run
the same interpreter with the same environment: PYTHONUNBUFFERED=1 and a warm
bytecode cache in a folder of its own (PYTHONPYCACHEPREFIX), as on a machine
that runs the pipeline from cron. Goals: `--resume --list` at most 1.2x
`--list` at 10,000 runs, and `history` as cheap at 10,000 runs as at none.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from _common import ORCHESTRATOR, PYTHON, clean_env, make_project, verdict

GOAL = 1.2
SIZES = (0, 1_000, 10_000)
BATCH = 10


def fill(log_dir: Path, count: int) -> None:
    """`count` successful runs, one every 15 minutes, then the newest one failed."""
    log_dir.mkdir(parents=True, exist_ok=True)
    record = {"run_id": "", "status": "success", "duration_seconds": 1.0, "dry_run": False,
              "trigger": "schedule", "modules": [{"name": "1.noop", "status": "success"}]}
    (log_dir / "template.json").write_text(json.dumps(record, indent=2) + "\n")
    (log_dir / "template.log").write_text("2026-01-01 00:00:00.000 | INFO | orchestrator | x\n")
    for i in range(count):
        day, quarter = divmod(i, 96)
        hour, minute = divmod(quarter * 15, 60)
        stub = f"2025{1 + day // 28:02d}{1 + day % 28:02d}_{hour:02d}h{minute:02d}"
        for suffix in ("json", "log"):
            os.link(log_dir / f"template.{suffix}", log_dir / f"workflow_{stub}.{suffix}")
    failed = dict(record, run_id="20990101_00h00", status="failed",
                  modules=[{"name": "1.noop", "status": "failed"}])
    (log_dir / "workflow_20990101_00h00.json").write_text(json.dumps(failed) + "\n")


def environment(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in clean_env().items() if k != "PYTHONDONTWRITEBYTECODE"}
    return dict(env, PYTHONUNBUFFERED="1", PYTHONPYCACHEPREFIX=str(cache), NO_COLOR="1")


def timed(command: Sequence[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def ratio(base: list[str], subject: list[str], cwd: Path, env: dict[str, str],
          max_batches: int) -> tuple[float, float, float, int]:
    """(median base s, median subject s, median of the paired ratios, pairs measured)."""
    timed(base, cwd, env), timed(subject, cwd, env)  # warm the caches
    pairs: list[tuple[float, float]] = []
    medians: list[float] = []
    for _ in range(max_batches):
        for _ in range(BATCH):
            pairs.append((timed(base, cwd, env), timed(subject, cwd, env)))
        medians.append(statistics.median(s / b for b, s in pairs))
        if len(medians) >= 2 and abs(medians[-1] - medians[-2]) <= 0.03 * medians[-2]:
            break
    return (statistics.median(b for b, _ in pairs), statistics.median(s for _, s in pairs),
            medians[-1], len(pairs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-batches", type=int, default=6)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = environment(Path(tmp) / "pycache")
        for size in args.sizes:
            root = make_project(Path(tmp) / f"bench {size}", {"1.noop.py": "pass\n"})
            fill(root / "data and logs", size)
            command = [PYTHON, str(ORCHESTRATOR)]
            config = ["--config", str(root / "config.json")]
            base = [*command, *config, "--list"]
            for name, subject in (("--resume --list", [*command, *config, "--resume", "--list"]),
                                  ("history", [*command, "history", *config])):
                b, s, r, n = ratio(base, subject, root, env, args.max_batches)
                goal = f" (goal <= {GOAL}) {verdict(r, GOAL)}" if name != "history" else ""
                print(f"history_read: {size:>6} runs: --list {1000 * b:.1f} ms, {name} "
                      f"{1000 * s:.1f} ms, ratio {r:.3f}{goal} [{n} pairs]", flush=True)


if __name__ == "__main__":
    main()
