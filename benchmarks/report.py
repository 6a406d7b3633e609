"""The cost of the history page: `report --html DIR` over 10,000 run records.

    python benchmarks/report.py [--rounds 5] [--max-batches 6]

10,000 runs (a record and a log each, four modules, every status, windows and
backfills) in the log folder. Whole processes are timed in pairs, turn about,
in batches of `--rounds` pairs until two batches agree within 3%: the baseline
is `history -n 200` (the table of the same 200 runs, read the same way), the
subjects `report --html DIR` (the newest 200, the default) and `report -n 10000`
(every run on the page). Goal: the page written in under a second; the ratio to
`history` says what drawing it costs over reading the records.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from _common import ORCHESTRATOR, PYTHON, alternate, make_project
from history_read import environment, timed

COUNT = 10_000
GOAL_SECONDS = 1.0
TEMPLATES = 24


def template(i: int) -> dict[str, object]:
    """A record as the runner writes one; `i` varies its statuses and durations."""
    status = "failed" if i % 7 == 3 else "partial" if i % 11 == 5 else "success"
    modules = [{"name": name, "path": f"modules/{name}.py", "status": "success", "exit_code": 0,
                "attempts": 1, "timed_out": False, "duration_seconds": 2.0 + (i * k) % 9,
                "peak_rss_mb": 40.0, "error": None}
               for k, name in enumerate(("0.retention_policy", "1.file_retrieval",
                                         "2.transform_data", "3.publish"), 1)]
    if status != "success":
        modules[2].update(status="failed" if status == "failed" else "recovered", exit_code=1,
                          error=f"ValueError: row {i}: bad date")
    if status == "failed":
        modules[3].update(status="not_run", exit_code=None, duration_seconds=None)
    return {"run_id": "", "status": status, "started": "2025-01-01T00:00:00+00:00",
            "duration_seconds": 20.0 + i, "dry_run": False, "force": False,
            "trigger": "schedule", "selection": None, "backfill": i % 13 == 0,
            "window": {"start": "2024-12-31T23:45:00+00:00", "end": "2025-01-01T00:00:00+00:00"},
            "log_file": "data and logs/workflow_x.log", "modules": modules}


def fill(log_dir: Path, count: int) -> None:
    """`count` runs, one every 15 minutes, hard links to a few varied templates."""
    log_dir.mkdir(parents=True, exist_ok=True)
    for i in range(TEMPLATES):
        (log_dir / f"template{i}.json").write_text(json.dumps(template(i), indent=2) + "\n")
    (log_dir / "template.log").write_text("2025-01-01 00:00:00.000 | INFO | orchestrator | x\n")
    for i in range(count):
        day, quarter = divmod(i, 96)
        hour, minute = divmod(quarter * 15, 60)
        stub = f"2025{1 + day // 28:02d}{1 + day % 28:02d}_{hour:02d}h{minute:02d}"
        os.link(log_dir / f"template{i % TEMPLATES}.json", log_dir / f"workflow_{stub}.json")
        os.link(log_dir / "template.log", log_dir / f"workflow_{stub}.log")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-batches", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = make_project(Path(tmp) / "project", {})
        fill(root / "data and logs", COUNT)
        env = environment(Path(tmp) / "pycache")
        config = ["--config", str(root / "config.json")]
        history = [PYTHON, str(ORCHESTRATOR), "history", "-n", "200", *config]
        for count in (200, COUNT):
            page = [PYTHON, str(ORCHESTRATOR), "report", "--html", str(Path(tmp) / "site"),
                    "-n", str(count), *config]
            timed(history, root, env)  # warm the bytecode cache and the disk cache alike
            timed(page, root, env)
            base, took = alternate(args.rounds, lambda: timed(history, root, env),
                                   lambda cmd=page: timed(cmd, root, env), args.max_batches)
            size = (Path(tmp) / "site" / "index.html").stat().st_size
            shown = "every one" if count == COUNT else f"the newest {count}"
            print(f"report: the page of {shown} of {COUNT:,} runs ({size / 1e6:.1f} MB): "
                  f"{1000 * took:.0f} ms, {took / base:.2f}x `history -n 200` "
                  f"({1000 * base:.0f} ms) (goal < {1000 * GOAL_SECONDS:.0f} ms) "
                  f"{'ok' if took < GOAL_SECONDS else 'OVER GOAL'}")


if __name__ == "__main__":
    main()
