"""Would turning Python's cycle collector off pay? The shipped pipeline, with and without.

    python benchmarks/collector.py [--rounds 5] [--max-batches 6]

A realistic run: the shipped config and modules on the sample data, `--force`
(every module does its work), `--no-push`, in a throw-away copy. The same run
is timed as it is, and with `gc.disable()` called before the runner is imported,
which keeps the collector off for the whole process: the most that `gc.disable`
or `gc.freeze` in the runner could save. Pairs alternate, in batches of
--rounds, until a batch moves the median paired ratio by at most 3%.

The runner calls neither: such a trick stays out unless it saves more than 5%
of a realistic run (this script prints the saving).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from _common import ORCHESTRATOR, PYTHON, REPO, alternate, timed

WORTH_IT = 0.05  # the least saving that would justify the collector tricks
# As `python orchestrator.py ...` runs it: the script's folder first on sys.path.
GC_OFF = ("import gc, os, runpy, sys; gc.disable(); sys.argv = sys.argv[1:]; "
          "sys.path.insert(0, os.path.dirname(sys.argv[0])); "
          "runpy.run_path(sys.argv[0], run_name='__main__')")


def project(root: Path) -> Path:
    for name in ("modules", "sample_data"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "config.json", root / "config.json")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-batches", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = project(Path(tmp) / "gc project")
        run = [str(ORCHESTRATOR), "--config", str(root / "config.json"), "--no-push", "--force"]
        plain, gc_off = [PYTHON, *run], [PYTHON, "-c", GC_OFF, *run]
        timed(plain, root)  # warm-up: bytecode, the first download
        timed(gc_off, root)
        base, subject = alternate(args.rounds, lambda: timed(plain, root),
                                  lambda: timed(gc_off, root), max_batches=args.max_batches)
    saving = 1 - subject / base
    verdict = "worth it" if saving > WORTH_IT else "not worth it"
    print(f"gc: the shipped pipeline: as it is {base:.3f} s, collector off {subject:.3f} s, "
          f"saving {100 * saving:.1f}% (tricks pay above {100 * WORTH_IT:.0f}%): {verdict}")


if __name__ == "__main__":
    main()
