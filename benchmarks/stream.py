"""Module output throughput: one module prints 1,000,000 lines of about 60 bytes.

    python benchmarks/stream.py [--lines 1000000] [--rounds 3]

The orchestrator (console to /dev/null, every line into its log) against
`python module.py > file`, alternated in one run. Goals: ratio at most 2.0,
the orchestrator's peak RSS at most 100 MB, and every line in the log.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from _common import PYTHON, alternate, clean_env, make_project, orchestrator_command, verdict

GOAL_RATIO = 2.0
GOAL_RSS_MB = 100.0
MODULE = """\
import sys
write = sys.stdout.write
pad = "x" * 52
for i in range({lines}):
    write(f"{{i:07d}} {{pad}}\\n")
"""


def redirect(root: Path) -> float:
    with open(root / "redirected.txt", "w") as out:
        start = time.perf_counter()
        subprocess.run([PYTHON, "modules/1.stream.py"], cwd=root, stdout=out, check=True)
        return time.perf_counter() - start


def peak_rss_mb(pid: int) -> float:
    """VmHWM, the process's own high-water mark (not its children's)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def orchestrate(root: Path, peaks: list[float]) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen(orchestrator_command(root), cwd=root, stdout=subprocess.DEVNULL,
                            env=clean_env())
    peak = 0.0
    while proc.poll() is None:
        try:
            peak = max(peak, peak_rss_mb(proc.pid))
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    if proc.wait() != 0:
        raise SystemExit("the orchestrator failed")
    peaks.append(peak)
    return elapsed


def logged_lines(root: Path, lines: int) -> tuple[int, bool]:
    newest = max((root / "data and logs").glob("workflow_*.log"), key=lambda p: p.stat().st_mtime)
    marker = "| INFO     | 1.stream | "
    count, last = 0, ""
    with open(newest) as log:
        for line in log:
            if marker in line and line.endswith("x\n"):  # the module's lines, not ours
                count += 1
                last = line
    return count, last.endswith(f"{marker}{lines - 1:07d} {'x' * 52}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    peaks: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = make_project(Path(tmp) / "bench project",
                            {"1.stream.py": MODULE.format(lines=args.lines)})
        base, orch = alternate(args.rounds, lambda: redirect(root),
                               lambda: orchestrate(root, peaks))
        count, last_ok = logged_lines(root, args.lines)
    ratio = orch / base
    peak = max(peaks)
    print(f"stream: {args.lines} lines: redirect {base:.3f} s, orchestrator {orch:.3f} s, "
          f"ratio {ratio:.2f} (goal <= {GOAL_RATIO}) {verdict(ratio, GOAL_RATIO)}")
    print(f"stream: orchestrator peak RSS {peak:.1f} MB (goal <= {GOAL_RSS_MB:.0f}) "
          f"{verdict(peak, GOAL_RSS_MB)}")
    complete = count == args.lines and last_ok
    print(f"stream: lines in the log {count} of {args.lines}, last line intact: {last_ok} "
          f"{'ok' if complete else 'LINES MISSING'}")


if __name__ == "__main__":
    main()
