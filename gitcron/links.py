"""Symlinks the runner did not make, found before it writes through them.

A module may replace the run's folder, or the log folder, with a symlink to a
folder outside the repository. The runner then writes nothing through it (no
record, no review report, no `runs/latest` pointing there) and commits nothing
of it; the run is `failed`, said in one ERROR line (docs/commit-back.md).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple


class Escape(NamedTuple):
    line: str  # the one ERROR line
    log_dir: bool  # the log folder itself: nothing more is written or committed from it


def escaped(log_dir: Path, log_dir_real: str, record_folder: Path, run_dir: Path
            ) -> Escape | None:
    """Whether the log folder, the folder of the run's record (a day's, in the daily
    layout) or the run's folder now lead elsewhere than where the run made them
    (`log_dir_real`: the log folder's real path when it began)."""
    now = os.path.realpath(log_dir)
    if now != log_dir_real:
        return Escape(f"the log folder {log_dir} was replaced during the run by a symlink to "
                      f"{now}: the runner does not write through it; the run record is not "
                      "written and nothing is committed", True)
    if os.path.realpath(record_folder) != _expected(log_dir, log_dir_real, record_folder):
        return Escape(f"the folder {record_folder} was replaced during the run by a symlink to "
                      f"{os.path.realpath(record_folder)}: the runner does not write through "
                      "it; the run record is not written and nothing is committed", True)
    if os.path.lexists(run_dir) and os.path.realpath(run_dir) != _expected(
            log_dir, log_dir_real, run_dir):
        return Escape(f"the run's folder {run_dir} was replaced during the run by a symlink to "
                      f"{os.path.realpath(run_dir)}: the runner does not write through it, and "
                      "it is not recorded or committed", False)
    return None


def _expected(log_dir: Path, log_dir_real: str, path: Path) -> str:
    """Where `path` (under the log folder) is, when nothing on the way is a symlink."""
    return os.path.normpath(os.path.join(
        log_dir_real, os.path.relpath(path.absolute(), log_dir.absolute())))
