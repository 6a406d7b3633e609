"""The review report's cost does not grow with the history in `log_dir`.

    python benchmarks/review.py [--rounds 7] [--runs 10000]

Two log folders, alike but for history: each holds this run's log, record and
run folder and a `data/` of 500 files; one of them also holds `--runs` older
runs (log, record, a run folder with a file). `notify.review_report` (which
measures the disk written by this run) is timed on each, the two alternated in
one process, 50 calls a sample, until the spread of the ratios is under 10%
(or 3 x rounds). Goal: ratio at most 1.3.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, verdict

sys.path.insert(0, str(REPO))
from gitcron import notify

GOAL = 1.3
CALLS = 50
RUN_ID = "20261123_06h00"
STARTED = "2026-11-23T06:00:00.000+00:00"


def fill(log_dir: Path, old_runs: int) -> dict[str, object]:
    (log_dir / "data").mkdir(parents=True)
    for i in range(500):
        (log_dir / "data" / f"part{i:03d}.csv").write_text("a,b\n1,2\n")
    for n in range(old_runs):
        run_id = f"2025{n // 1440 % 12 + 1:02d}{n // 48 % 28 + 1:02d}_{n % 24:02d}h{n % 60:02d}_{n}"
        (log_dir / f"workflow_{run_id}.log").write_text("line\n")
        (log_dir / f"workflow_{run_id}.json").write_text("{}\n")
        (log_dir / "runs" / run_id).mkdir(parents=True)
        (log_dir / "runs" / run_id / "out.csv").write_text("x\n")
    (log_dir / f"workflow_{RUN_ID}.log").write_text("line\n" * 1000)
    record = {"run_id": RUN_ID, "status": "failed", "started": STARTED,
              "duration_seconds": 1.0, "trigger": "schedule",
              "log_file": f"data and logs/workflow_{RUN_ID}.log",
              "modules": [{"name": f"{i}.m", "status": "failed" if i == 3 else "success",
                           "exit_code": 3 if i == 3 else 0, "attempts": 1,
                           "peak_rss_mb": 10.0 + i} for i in range(1, 6)]}
    (log_dir / f"workflow_{RUN_ID}.json").write_text(json.dumps(record))
    (log_dir / "runs" / RUN_ID).mkdir(parents=True, exist_ok=True)
    (log_dir / "runs" / RUN_ID / "result.csv").write_text("x\n" * 100)
    return record


def sample(record: dict[str, object], log_dir: Path) -> float:
    tails = {"3.m": ["Traceback (most recent call last):", "ValueError: bad"]}
    start = time.perf_counter()
    for _ in range(CALLS):
        notify.review_report(record, tails, pipeline="bench", log_dir=log_dir)
    return (time.perf_counter() - start) / CALLS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh, old = Path(tmp) / "fresh" / "data and logs", Path(tmp) / "old" / "data and logs"
        record = fill(fresh, 0)
        fill(old, args.runs)
        ratios, bases, subjects = [], [], []
        for n in range(3 * args.rounds):
            bases.append(sample(record, fresh))
            subjects.append(sample(record, old))
            ratios.append(subjects[-1] / bases[-1])
            spread = (max(ratios[-args.rounds:]) - min(ratios[-args.rounds:])) / statistics.median(
                ratios[-args.rounds:])
            if n + 1 >= args.rounds and spread < 0.10:
                break
    ratio = statistics.median(ratios)
    with_runs, without = 1000 * statistics.median(subjects), 1000 * statistics.median(bases)
    print(f"review: report with {args.runs} old runs in log_dir {with_runs:.2f} ms, "
          f"without {without:.2f} ms, ratio {ratio:.3f} "
          f"(goal <= {GOAL}, spread {spread:.1%} over {len(ratios)} rounds) {verdict(ratio, GOAL)}")


if __name__ == "__main__":
    main()
