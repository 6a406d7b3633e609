"""Recovery script: put back the outputs that the failed module replaced in this run.

Name it as a module's `on_failure` (the shipped config does so for
2.transform_data):

    {"path": "modules/2.transform_data.py", "on_failure": "modules/rollback.py"}

The orchestrator runs it once after the module failed for good, with the
module's environment plus PIPELINE_FAILED_MODULE and PIPELINE_FAILED_EXIT_CODE.
It restores every set of outputs that module had begun to replace in this run
(see modules/_previous.py: the module keeps the last good outputs before it
replaces them), so that the data folder holds the last good outputs, whole,
and the run can go on.

Exit 0 when the outputs are the last good ones (restored, or never touched),
1 when they could not be restored, 2 when run without the orchestrator's
environment. Under PIPELINE_DRY_RUN=1 it says what it would restore.
Its name has no number, so the orchestrator never runs it as a stage.
"""

from __future__ import annotations

import sys

import _common as common
import _previous as previous


def main() -> int:
    module = common.variable("PIPELINE_FAILED_MODULE")
    code = common.variable("PIPELINE_FAILED_EXIT_CODE")
    run_id, folder, dry_run = common.run_id(), common.data_dir(), common.dry_run()
    sets = {journal: found for journal in previous.journals(folder)
            if (found := previous.replaced_by(journal, module, run_id)) is not None}
    if not sets:
        print(f"{module} failed ({code}) and replaced no outputs in run {run_id}: "
              "the last good outputs stand")
        return 0
    try:
        for found in sets.values():
            for line in previous.restore(folder, found, dry_run):
                print(line)
    except OSError as exc:
        print(f"cannot roll back {module}: {exc.strerror or exc}", file=sys.stderr)
        return common.FAILED
    verb = "would restore" if dry_run else "restored"
    print(f"{module} failed ({code}): {verb} the outputs it replaced in run {run_id} "
          f"({common.counted(len(sets), 'set')})")
    return 0


if __name__ == "__main__":
    common.run(main)
