"""Helpers for the benchmarks: throw-away projects and timing of real processes."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ORCHESTRATOR = REPO / "orchestrator.py"
# The real interpreter, not a shim on PATH that may add tens of ms a call.
PYTHON = sys.executable


def make_project(root: Path, modules: dict[str, str], **config: object) -> Path:
    (root / "modules").mkdir(parents=True)
    for name, code in modules.items():
        (root / "modules" / name).write_text(code)
    (root / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return root


def orchestrator_command(root: Path) -> list[str]:
    return [PYTHON, str(ORCHESTRATOR), "--config", str(root / "config.json"), "--no-push"]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("GITHUB_", "PIPELINE_"))}


def timed(command: Sequence[str], cwd: Path, stdout: int | None = subprocess.DEVNULL) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, stdout=stdout, stderr=subprocess.DEVNULL, check=True,
                   env=clean_env())
    return time.perf_counter() - start


def alternate(rounds: int, baseline: Callable[[], float], subject: Callable[[], float],
              max_batches: int = 1, settle: float = 0.03) -> tuple[float, float]:
    """Medians of both, measured turn about so that drift hits both alike.

    With `max_batches` above 1, batches of `rounds` pairs go on until a batch
    moves the median of the paired ratios by at most `settle`, or for
    `max_batches` batches.
    """
    base: list[float] = []
    subj: list[float] = []
    medians: list[float] = []
    while len(medians) < max_batches and (len(medians) < 2 or abs(
            medians[-1] - medians[-2]) > settle * medians[-2]):
        for _ in range(rounds):
            base.append(baseline())
            subj.append(subject())
        medians.append(statistics.median(s / b for b, s in zip(base, subj, strict=True)))
    return statistics.median(base), statistics.median(subj)


def verdict(ratio: float, goal: float) -> str:
    return "ok" if ratio <= goal else "OVER GOAL"
