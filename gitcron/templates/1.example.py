"""An example module: one stage of the pipeline. Replace it with your own.

The orchestrator runs it with the run's settings in its environment (gitcron's
docs/modules.md). Exit 0: success; exit 10: skipped (nothing to do); any
other code: failed.
"""

import os
import sys
from pathlib import Path

SKIPPED = 10

# The run's time window [start, end): handle exactly the data that arrived in it.
start = os.environ.get("PIPELINE_WINDOW_START", "")
end = os.environ.get("PIPELINE_WINDOW_END") or os.environ.get("PIPELINE_RUN_STARTED", "")
dry_run = os.environ.get("PIPELINE_DRY_RUN") == "1"

if start and start == end:
    print("the window is empty: nothing to do")
    sys.exit(SKIPPED)

print(f"handling data from {start or 'the beginning'} until {end or 'now'}")
if dry_run:
    print("dry run: nothing written")
    sys.exit(0)

# Per-run outputs go to the run's own folder, committed with the run.
run_dir = os.environ.get("PIPELINE_RUN_DIR")
if run_dir:
    Path(run_dir, "example.txt").write_text(f"window {start or '-'} .. {end}\n")
    print(f"wrote {Path(run_dir, 'example.txt')}")
