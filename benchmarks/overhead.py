"""The orchestrator's own cost: 100 no-op modules, against a bare shell loop.

    python benchmarks/overhead.py [--rounds 5]

Both run the same files with the same interpreter; the two are alternated in
one run and the medians compared. Goal: ratio at most 1.15.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import PYTHON, alternate, make_project, orchestrator_command, timed, verdict

MODULES = 100
GOAL = 1.15
# Runs every module file in order, as run-parts would: the least any runner can cost.
SHELL_LOOP = 'for f in modules/*.py; do "$1" "$f" || exit 1; done'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = make_project(Path(tmp) / "bench project",
                            {f"{i:03d}.noop.py": "pass\n" for i in range(1, MODULES + 1)})
        shell = ["bash", "-c", SHELL_LOOP, "loop", PYTHON]
        base, orch = alternate(args.rounds, lambda: timed(shell, root),
                               lambda: timed(orchestrator_command(root), root))
    ratio = orch / base
    print(f"overhead: {MODULES} no-op modules: shell loop {base:.3f} s, orchestrator {orch:.3f} s, "
          f"ratio {ratio:.3f} (goal <= {GOAL}) {verdict(ratio, GOAL)}; "
          f"orchestrator's own cost {1000 * (orch - base) / MODULES:.2f} ms per module")


if __name__ == "__main__":
    main()
