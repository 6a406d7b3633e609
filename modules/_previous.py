"""Keep the outputs a stage is about to replace, so that a recovery script can put them back.

    previous.keep(folder, "seattle-weather", ["seattle-weather.clean.csv", ...])
    ... write the new outputs, each by a rename ...

`keep` links each output that exists to `<name>.previous` (a hard link: no
copy, and the old bytes stay as they were, since an output is replaced by a
rename, never rewritten in place), then writes `<set>.previous.json`: which
module of which run is replacing the set, and which of its files existed.

`restore` (modules/rollback.py calls it after a module failed) puts back every
set that the failed module replaced in this run, as it was before: files that
existed come back from `.previous`, files that did not are removed. A set that
this run did not replace still holds the outputs of an earlier good run: there
is nothing to undo.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import _common as common

BACKUP_SUFFIX = ".previous"
JOURNAL_SUFFIX = ".previous.json"


def keep(folder: Path, set_name: str, names: list[str]) -> None:
    """Before replacing `names` in `folder`: keep what is there now, and say so."""
    existed = []
    for name in names:
        path, backup = folder / name, folder / (name + BACKUP_SUFFIX)
        if path.is_file() and not path.is_symlink():
            link_or_copy(path, backup)
            existed.append(name)
        else:
            backup.unlink(missing_ok=True)
    # Written last: until it names this run, a restore leaves the set alone.
    common.write_json(folder / (set_name + JOURNAL_SUFFIX), {
        "module": os.environ.get("PIPELINE_MODULE"), "run_id": common.run_id(),
        "files": names, "existed": existed})


def link_or_copy(source: Path, target: Path) -> None:
    """`target` becomes `source`'s bytes, atomically; a copy where links are not allowed."""
    tmp = common.temporary_beside(target)
    try:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
        common.commit_file(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def journals(folder: Path) -> list[Path]:
    try:
        return sorted(path for path in folder.iterdir() if path.name.endswith(JOURNAL_SUFFIX))
    except FileNotFoundError:
        return []


def replaced_by(journal: Path, module: str, run_id: str) -> dict[str, Any] | None:
    """The journal's content if `module` of this run replaced that set, else None."""
    value = common.read_json(journal, {})
    if value.get("module") != module or value.get("run_id") != run_id:
        return None
    files, existed = value.get("files"), value.get("existed")
    if not all(isinstance(names, list) and all(
            isinstance(name, str) and name == Path(name).name and name not in ("", ".", "..")
            for name in names) for names in (files, existed)):
        raise common.SettingsError(f"{journal}: not a list of file names; "
                                   "restore the files by hand")
    return value


def restore(folder: Path, journal: dict[str, Any], dry_run: bool) -> list[str]:
    """Put one set back as it was: lines saying what was done."""
    done, restored = [], "would restore" if dry_run else "restored"
    removed = "would remove" if dry_run else "removed"
    for name in journal["files"]:
        path, backup = folder / name, folder / (name + BACKUP_SUFFIX)
        if name in journal["existed"]:
            if not backup.is_file():
                raise FileNotFoundError(f"{backup.name} is missing: cannot restore {name}")
            if not dry_run:
                link_or_copy(backup, path)
            done.append(f"{restored} {name}")
        elif path.is_file() or path.is_symlink():  # a folder is not ours: left alone
            if not dry_run:
                path.unlink()
            done.append(f"{removed} {name} (there was none before)")
    return done
