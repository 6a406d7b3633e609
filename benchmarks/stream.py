"""Module output throughput: one module prints 1,000,000 lines of about 60 bytes.

    python benchmarks/stream.py [--lines 1000000] [--min-rounds 5] [--max-rounds 15]

The orchestrator (console to /dev/null, every line into its log) against the
same module run as `python module.py > file`, in paired rounds that alternate
the two. Buffering is set explicitly and identically on both sides:

- buffered: PYTHONUNBUFFERED unset for both; the module entry says
  `"unbuffered": false`. Goal: at most 1.3x the redirect in wall time, 2.0x in CPU.
- live: PYTHONUNBUFFERED=1 for both (the orchestrator's default for a module).
  Goal: at most 1.2x in wall time, 1.5x in CPU.

CPU is user + system time of the process and its waited-for children (wait4).
Rounds go on until the ratios' spread (interquartile range over median) is
under 5 %, or --max-rounds. Every line must be in the log, in order.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from _common import PYTHON, clean_env, make_project, orchestrator_command, verdict

GOALS = {"buffered": (1.3, 2.0), "live": (1.2, 1.5)}  # (wall, cpu)
SPREAD = 0.05
MODULE = """\
import sys
write = sys.stdout.write
pad = "x" * 52
for i in range({lines}):
    write(f"{{i:07d}} {{pad}}\\n")
"""


def environment(live: bool) -> dict[str, str]:
    env = clean_env()
    env.pop("PYTHONUNBUFFERED", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if live:
        env["PYTHONUNBUFFERED"] = "1"
    return env


def measured(command: list[str], cwd: Path, env: dict[str, str], stdout: int
             ) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and its children)."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=stdout,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{command[1]} failed with exit code {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def redirect(root: Path, env: dict[str, str]) -> tuple[float, float]:
    with open(root / "redirected.txt", "wb") as out:
        return measured([PYTHON, "modules/1.stream.py"], root, env, out.fileno())


def orchestrate(root: Path, env: dict[str, str]) -> tuple[float, float]:
    return measured(orchestrator_command(root), root, env, subprocess.DEVNULL)


def spread(values: list[float]) -> float:
    q1, _, q3 = statistics.quantiles(values, n=4)
    return (q3 - q1) / statistics.median(values)


def logged_lines(root: Path, lines: int) -> tuple[int, bool]:
    """How many of the module's lines the newest log holds, and whether in order."""
    newest = max((root / "data and logs").glob("workflow_*.log"), key=lambda p: p.stat().st_mtime)
    marker, pad = " | 1.stream | ", "x" * 52
    count, in_order = 0, True
    with open(newest) as log:
        for line in log:
            if marker in line and line.endswith(f" {pad}\n"):  # the module's lines, not ours
                in_order = in_order and line.endswith(f"{marker}{count:07d} {pad}\n")
                count += 1
    return count, in_order and count == lines


def case(name: str, lines: int, min_rounds: int, max_rounds: int) -> None:
    live = name == "live"
    with tempfile.TemporaryDirectory() as tmp:
        entry = {"path": "modules/1.stream.py", "unbuffered": live}
        root = make_project(Path(tmp) / "bench project",
                            {"1.stream.py": MODULE.format(lines=lines)})
        (root / "config.json").write_text(json.dumps({"modules": [entry]}))
        env = environment(live)
        pairs: list[tuple[tuple[float, float], tuple[float, float]]] = []
        while len(pairs) < max_rounds:
            pairs.append((redirect(root, env), orchestrate(root, env)))
            walls = [o[0] / b[0] for b, o in pairs]
            cpus = [o[1] / b[1] for b, o in pairs]
            if len(pairs) >= min_rounds and max(spread(walls), spread(cpus)) < SPREAD:
                break
        count, in_order = logged_lines(root, lines)
    goal_wall, goal_cpu = GOALS[name]
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    base_wall = statistics.median(b[0] for b, _ in pairs)
    base_cpu = statistics.median(b[1] for b, _ in pairs)
    orch_wall = statistics.median(o[0] for _, o in pairs)
    orch_cpu = statistics.median(o[1] for _, o in pairs)
    print(f"stream {name}: {lines} lines, {len(pairs)} paired rounds: "
          f"wall redirect {base_wall:.3f} s, orchestrator {orch_wall:.3f} s, "
          f"ratio {wall:.2f} (goal <= {goal_wall}) {verdict(wall, goal_wall)}; "
          f"CPU redirect {base_cpu:.3f} s, orchestrator {orch_cpu:.3f} s, "
          f"ratio {cpu:.2f} (goal <= {goal_cpu}) {verdict(cpu, goal_cpu)}; "
          f"spread {max(spread(walls), spread(cpus)):.1%}")
    print(f"stream {name}: lines in the log {count} of {lines}, in order: {in_order} "
          f"{'ok' if in_order else 'LINES MISSING'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--min-rounds", type=int, default=5)
    parser.add_argument("--max-rounds", type=int, default=15)
    parser.add_argument("--case", choices=[*GOALS, "both"], default="both")
    args = parser.parse_args()
    for name in GOALS if args.case == "both" else [args.case]:
        case(name, args.lines, args.min_rounds, args.max_rounds)


if __name__ == "__main__":
    main()
