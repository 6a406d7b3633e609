"""Which modules run, in what order.

From the config's `modules` list, or by discovery in `modules/`; then narrowed
by --only, --from, --skip and --resume.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timezone
from pathlib import Path

from pipeline import config as cfg
from pipeline.codes import FatalError
from pipeline.config import Config, ModuleSpec

RECORD_GLOB = "workflow_*.json"


@dataclass(frozen=True)
class Selection:
    """What the command line asked for; names as the user typed them."""

    only: tuple[str, ...] = ()
    start: str | None = None  # --from
    skip: tuple[str, ...] = ()
    resume: bool = False


@dataclass(frozen=True)
class Plan:
    modules: tuple[ModuleSpec, ...]  # what runs, in order
    known: tuple[ModuleSpec, ...]  # every configured or discovered module
    ignored: tuple[str, ...] = field(default=())  # files discovery passed over
    note: str = ""  # why nothing runs, when that is not an error


def build(config: Config, selection: Selection) -> Plan:
    """The plan for this run; FatalError for unknown names or nothing to run."""
    known, ignored = (config.modules, ()) if config.modules is not None else discover(config)
    if not known:
        where = "modules" if config.modules is not None else "modules/ (no numbered files)"
        raise FatalError(f"{config.display}: {where}: no modules to run")
    start = selection.start
    if selection.resume:
        start, note = resume_point(config)
        if start is None:
            return Plan((), known, ignored, note=note)
        resolve(known, start, "--resume")
    chosen = select(known, selection.only, start, selection.skip)
    if not chosen:
        raise FatalError("--only/--from/--skip: that selection leaves no module to run")
    return Plan(chosen, known, ignored)


def discover(config: Config) -> tuple[tuple[ModuleSpec, ...], tuple[str, ...]]:
    """Numbered files directly in modules/, by number as a number (2 before 10)."""
    folder = config.root / "modules"
    if not folder.is_dir():
        raise FatalError(f"{config.display}: no `modules` key and no folder {folder}")
    numbered: list[tuple[int, str, Path]] = []
    ignored: list[str] = []
    for entry in folder.iterdir():
        match = cfg.NUMBERED.match(entry.name)
        if match and entry.is_file():
            numbered.append((int(match.group(1)), entry.name, entry))
        else:
            ignored.append(entry.name)
    numbered.sort()
    specs = tuple(_discovered(config, path) for _, _, path in numbered)
    return specs, tuple(sorted(ignored))


def _discovered(config: Config, path: Path) -> ModuleSpec:
    return cfg.module_spec(
        path.resolve(),
        config.root,
        display=config.display,
        key=f"modules/{path.name}",
        timeout_seconds=config.default_timeout_seconds,
    )


def select(
    known: Sequence[ModuleSpec],
    only: Sequence[str] = (),
    start: str | None = None,
    skip: Sequence[str] = (),
) -> tuple[ModuleSpec, ...]:
    """Apply --only, --from and --skip, keeping pipeline order.

    Disabled modules run only when --only names them.
    """
    order = {spec.name: i for i, spec in enumerate(known)}
    chosen = [s for s in known if s.enabled]
    if only:
        wanted = {resolve(known, name, "--only").name for name in only}
        chosen = [s for s in known if s.name in wanted]
    if start is not None:
        first = order[resolve(known, start, "--from").name]
        chosen = [s for s in chosen if order[s.name] >= first]
    left_out = {resolve(known, name, "--skip").name for name in skip}
    return tuple(s for s in chosen if s.name not in left_out)


def resolve(known: Sequence[ModuleSpec], name: str, option: str) -> ModuleSpec:
    """A module named by its name, the part after its number, or its number."""
    number = str(int(name)) if name.isdigit() else None
    for attribute, wanted in (("name", name), ("short_name", name), ("number", number)):
        matches = [s for s in known if wanted is not None and getattr(s, attribute) == wanted]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            names = ", ".join(s.name for s in matches)
            raise FatalError(f"{option}: {name!r} is ambiguous: it names {names}")
    names = ", ".join(s.name for s in known)
    raise FatalError(f"{option}: unknown module {name!r}; known modules: {names}")


def newest_record(log_dir: Path) -> tuple[Path, dict] | None:
    """The run record with the latest start, or None when there is none."""
    best: tuple[str, float, Path, dict] | None = None
    for path in log_dir.glob(RECORD_GLOB):
        record = _read_record(path)
        if record is None:
            continue
        key = (_sortable(record.get("started")), path.stat().st_mtime, path, record)
        if best is None or key[:2] > best[:2]:
            best = key
    return None if best is None else (best[2], best[3])


def _read_record(path: Path) -> dict | None:
    """A run record, or None for a file that is not one (a user's own JSON)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(record, dict) and isinstance(record.get("modules"), list)
    return record if ok else None


def _sortable(started: object) -> str:
    """Starts compare as UTC instants, whatever offset each record was written with."""
    try:
        return cfg.parse_timestamp(str(started)).astimezone(timezone.utc).isoformat()
    except ValueError:
        return ""


def resume_point(config: Config) -> tuple[str | None, str]:
    """The module that failed or was interrupted in the newest run (or None, and why)."""
    from pipeline import history

    newest = history.resume_record(config.log_dir)
    if newest is None:
        raise FatalError(f"--resume: no run record in {config.log_dir} to resume from")
    path, record = newest
    for module in record["modules"]:
        if isinstance(module, dict) and module.get("status") == "failed":
            return str(module.get("name")), ""
    return None, f"--resume: nothing to resume: no module failed in {path.name}"
