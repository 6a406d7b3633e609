"""The orchestrator's own cost: 100 no-op modules, against a bare shell loop and run-parts.

    python benchmarks/overhead.py [--batch 7] [--max-batches 6]

All of them run the same 100 Python files with the same interpreter and the
same environment (PYTHONUNBUFFERED=1 set, PYTHONDONTWRITEBYTECODE unset, as on a
user's machine, so the orchestrator's own bytecode is cached after a warm-up
run). Each round runs them back to back, in a rotating order, so that drift
hits all alike. Rounds come in batches until the median ratios (against the
loop and run-parts) of the rounds so far move by at most 2% from one batch to
the next; the medians of the per-round ratios are reported with their spread.
Goal: at most 1.15 against the shell loop and run-parts.

A fourth side, a bare Python loop calling subprocess.run per module, shows the
floor of any runner written in Python: how much of the distance to the shell
loop is Python starting processes, and how much is the orchestrator's own work.

The orchestrator and the Python loop also run a project of one module, in the
same rounds, which splits each one's time into a fixed start-up and a cost per
module: per module = (time of 100 - time of 1) / 99, start-up = time of 1 - per
module. Goal: the orchestrator's cost per module within 1 ms of the Python loop's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from _common import PYTHON, clean_env, make_project, orchestrator_command, verdict

MODULES = 100
GOAL = 1.15
PER_MODULE_GOAL_MS = 1.0  # above the Python loop's own cost per module
STABLE = 0.02  # stop when a batch moves the median ratios by at most this much
# Runs every module file in order: the least any runner can cost.
SHELL_LOOP = 'for f in modules/*.py; do "$1" "$f" || exit 1; done'
# The least a runner written in Python can cost: what starting processes from
# Python costs before any work of ours. Reported, not a goal.
PYTHON_LOOP = ("import glob, subprocess, sys\n"
               "for path in sorted(glob.glob('modules/*.py')):\n"
               "    subprocess.run([sys.executable, path], check=True)\n")


def environment() -> dict[str, str]:
    env = clean_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def timed(command: Sequence[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (the child and all its descendants) of one whole process."""
    before = os.times()
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system)
    return wall, cpu


def run_parts_folder(root: Path) -> Path:
    """The same modules for run-parts, which takes only names of [A-Za-z0-9_-]."""
    folder = root / "parts"
    folder.mkdir()
    for i in range(1, MODULES + 1):
        path = folder / f"{i:03d}-noop"
        path.write_text(f"#!{PYTHON}\npass\n")
        path.chmod(0o755)
    return folder


def spread(values: list[float]) -> str:
    q = statistics.quantiles(values, n=4)
    return f"IQR {q[0]:.3f}-{q[2]:.3f}"


def _goal(base: str, ratio: float) -> str:
    return "" if base == "python loop" else f" (goal <= {GOAL}) {verdict(ratio, GOAL)}"


def median_ratio(times: dict[str, list[tuple[float, float]]], base: str) -> float:
    """The orchestrator's median paired wall-time ratio against `base`."""
    return statistics.median(o[0] / b[0] for o, b in
                             zip(times["orchestrator"], times[base], strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=7, help="rounds per batch")
    parser.add_argument("--max-batches", type=int, default=6)
    args = parser.parse_args()
    env = environment()
    with tempfile.TemporaryDirectory() as tmp:
        root = make_project(Path(tmp) / "bench project",
                            {f"{i:03d}.noop.py": "pass\n" for i in range(1, MODULES + 1)})
        one = make_project(Path(tmp) / "one module", {"001.noop.py": "pass\n"})
        commands = {
            "loop": ["bash", "-c", SHELL_LOOP, "loop", PYTHON],
            "run-parts": ["run-parts", "--exit-on-error", str(run_parts_folder(root))],
            "python loop": [PYTHON, "-c", PYTHON_LOOP],
            "orchestrator": orchestrator_command(root),
            "python loop, 1 module": [PYTHON, "-c", PYTHON_LOOP],
            "orchestrator, 1 module": orchestrator_command(one),
        }
        where = {name: one if name.endswith("1 module") else root for name in commands}
        for name, command in commands.items():  # warm-up: caches, bytecode
            timed(command, where[name], env)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        names = list(commands)
        medians: list[tuple[float, float]] = []
        rounds = 0
        while len(medians) < 2 or (len(medians) < args.max_batches and any(
                abs(now - before) > STABLE * before
                for now, before in zip(medians[-1], medians[-2], strict=True))):
            for _ in range(args.batch):
                for name in names[rounds % len(names):] + names[: rounds % len(names)]:
                    times[name].append(timed(commands[name], where[name], env))
                rounds += 1
            medians.append((median_ratio(times, "loop"), median_ratio(times, "run-parts")))
    orch = times["orchestrator"]
    floor = [p[0] / b[0] for p, b in zip(times["python loop"], times["loop"], strict=True)]
    print(f"overhead: floor: a bare Python loop (subprocess.run per module) against the "
          f"loop: ratio {statistics.median(floor):.3f} ({spread(floor)}) [{rounds} rounds]")
    for base in ("loop", "run-parts", "python loop"):
        ratios = [o[0] / b[0] for o, b in zip(orch, times[base], strict=True)]
        ratio = median_ratio(times, base)
        cpu = [o[1] / b[1] for o, b in zip(orch, times[base], strict=True)]
        wall_b = statistics.median(t[0] for t in times[base])
        wall_o = statistics.median(t[0] for t in orch)
        print(f"overhead: {MODULES} no-op modules: {base} {wall_b:.3f} s, orchestrator "
              f"{wall_o:.3f} s, ratio {ratio:.3f} ({spread(ratios)}; CPU ratio "
              f"{statistics.median(cpu):.3f}){_goal(base, ratio)}; "
              f"{1000 * (wall_o - wall_b) / MODULES:.2f} ms per module [{rounds} rounds]")
    print_split(times, rounds)


def split(times: dict[str, list[tuple[float, float]]], name: str) -> tuple[float, float]:
    """Median fixed start-up and cost per module, in ms, from the paired rounds."""
    per = [(many[0] - one[0]) / (MODULES - 1) for many, one in
           zip(times[name], times[f"{name}, 1 module"], strict=True)]
    fixed = [one[0] - p for one, p in zip(times[f"{name}, 1 module"], per, strict=True)]
    return 1000 * statistics.median(fixed), 1000 * statistics.median(per)


def print_split(times: dict[str, list[tuple[float, float]]], rounds: int) -> None:
    fixed_p, per_p = split(times, "python loop")
    fixed_o, per_o = split(times, "orchestrator")
    extra = per_o - per_p
    print(f"overhead: fixed start-up: orchestrator {fixed_o:.1f} ms, python loop "
          f"{fixed_p:.1f} ms [{rounds} rounds]")
    print(f"overhead: per module: orchestrator {per_o:.2f} ms, python loop {per_p:.2f} ms, "
          f"difference {extra:.2f} ms (goal <= {PER_MODULE_GOAL_MS}) "
          f"{verdict(extra, PER_MODULE_GOAL_MS)} [{rounds} rounds]")


if __name__ == "__main__":
    main()
