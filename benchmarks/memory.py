"""The orchestrator's peak memory for the output patterns a module can throw at it.

    python benchmarks/memory.py [--scale 1.0]

Each pattern runs in a real orchestrator process (console to /dev/null, the
log on disk); its own peak RSS (getrusage(RUSAGE_SELF).ru_maxrss, read as it
exits, so the module's memory is not counted) is printed with the goal: at most
40 MB whatever the module prints.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import PYTHON, REPO, clean_env, make_project

GOAL_MB = 40.0
PATTERNS = {
    "one endless line (200 MB, no newline)": """
import sys
block = "y" * (1 << 20)
for _ in range(int(200 * {scale})):
    sys.stdout.write(block)
""",
    "many short lines (5,000,000)": """
import sys
write = sys.stdout.write
for i in range(int(5_000_000 * {scale})):
    write(f"{{i}}\\n")
""",
    "ten 10 MB stderr lines, then fail": """
import sys
line = "e" * int(10_000_000 * {scale}) + "\\n"
for _ in range(10):
    sys.stderr.write(line)
sys.exit(1)
""",
    "both streams at once (2 x 50 MB)": """
import sys
out, err = sys.stdout.write, sys.stderr.write
pad = "z" * 90
for i in range(int(500_000 * {scale})):
    out(f"{{i}} {{pad}}\\n")
    err(f"{{i}} {{pad}}\\n")
""",
}
# Runs the orchestrator in this very process and reports the process's own peak.
WRAPPER = """
import json, resource, sys
sys.path.insert(0, sys.argv[1])
from gitcron.cli import main
try:
    code = main(sys.argv[3:])
finally:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open(sys.argv[2], "w") as out:
        json.dump({"peak_kb": peak}, out)
raise SystemExit(code)
"""


def peak_mb(root: Path) -> tuple[float, int]:
    report = root / "peak.json"
    args = ["--config", str(root / "config.json"), "--no-push"]
    env = dict(clean_env(), PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run([PYTHON, "-c", WRAPPER, str(REPO), str(report), *args], cwd=root,
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kilobytes = json.loads(report.read_text())["peak_kb"]
    divisor = 1024 * 1024 if sys.platform == "darwin" else 1024  # bytes there, KiB here
    return kilobytes / divisor, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="size of every pattern")
    args = parser.parse_args()
    worst = 0.0
    for name, code in PATTERNS.items():
        with tempfile.TemporaryDirectory() as tmp:
            root = make_project(Path(tmp) / "bench project",
                                {"1.output.py": code.format(scale=args.scale)})
            peak, exit_code = peak_mb(root)
        worst = max(worst, peak)
        print(f"memory: {name}: orchestrator peak RSS {peak:.1f} MB (goal <= {GOAL_MB:.0f}) "
              f"{'ok' if peak <= GOAL_MB else 'OVER GOAL'} (exit code {exit_code})")
    print(f"memory: worst {worst:.1f} MB (goal <= {GOAL_MB:.0f}) "
          f"{'ok' if worst <= GOAL_MB else 'OVER GOAL'}")


if __name__ == "__main__":
    main()
