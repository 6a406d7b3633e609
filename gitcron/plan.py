"""Which modules run, in what order.

From the config's `modules` list, or by discovery in `modules/`; then narrowed
by --only, --from, --skip and --resume.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from gitcron import config as cfg
from gitcron import runid
from gitcron.codes import FatalError
from gitcron.config import Config, ModuleSpec


class Selection(NamedTuple):
    """What the command line asked for; names as the user typed them."""

    only: tuple[str, ...] = ()
    start: str | None = None  # --from
    skip: tuple[str, ...] = ()
    resume: bool = False


class Resumed(NamedTuple):
    """The run a --resume continues: its id, the original run of a chain of
    resumes, and the record (for its window)."""

    run_id: str
    record: dict[str, Any]
    original: dict[str, Any]  # the record of the first run of a chain of resumes


def _resume_of(record: dict[str, Any]) -> str | None:
    selection = record.get("selection")
    value = selection.get("resume_of") if isinstance(selection, dict) else None
    return value if isinstance(value, str) else None


def _original(log_dir: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Follow `resume_of` back to the run whose window a chain of resumes completes."""
    from gitcron import records

    for _ in range(1000):  # a hand-made cycle must not hang the run
        previous = _resume_of(record)
        found = records.find_record(log_dir, previous) if previous else None
        if found is None:
            return record
        record = found
    return record


class Plan(NamedTuple):
    modules: tuple[ModuleSpec, ...]  # what runs, in order
    known: tuple[ModuleSpec, ...]  # every configured or discovered module
    ignored: tuple[str, ...] = ()  # files discovery passed over
    note: str = ""  # why nothing runs, when that is not an error
    selection: Selection = Selection()
    resumed: Resumed | None = None

    @property
    def whole(self) -> bool:
        """The whole pipeline, as configured: only such a run moves last_run_date."""
        s = self.selection
        return not (s.only or s.start or s.skip or s.resume)

    def selection_record(self) -> dict[str, Any] | None:
        """What the run record says was selected (null for the whole pipeline)."""
        if self.whole and self.resumed is None:
            return None
        s = self.selection
        return {"only": list(s.only), "from": s.start, "skip": list(s.skip),
                "resume_of": self.resumed.run_id if self.resumed else None}


def build(config: Config, selection: Selection) -> Plan:
    """The plan for this run; FatalError for unknown names or nothing to run."""
    known, ignored = (config.modules, ()) if config.modules is not None else discover(config)
    if not known:
        where = "modules" if config.modules is not None else "modules/ (no numbered files)"
        raise FatalError(f"{config.display}: {where}: no modules to run")
    start, resumed = selection.start, None
    if selection.resume:
        resumed, start, note = resume_point(config)
        if start is None:
            return Plan((), known, ignored, note=note, selection=selection)
        resolve(known, start, "--resume", config)
    chosen = select(known, selection.only, start, selection.skip, config)
    if not chosen:
        raise FatalError("--only/--from/--skip: that selection leaves no module to run")
    return Plan(chosen, known, ignored, selection=selection, resumed=resumed)


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
        **config.module_defaults(),
    )


def select(
    known: Sequence[ModuleSpec],
    only: Sequence[str] = (),
    start: str | None = None,
    skip: Sequence[str] = (),
    config: Config | None = None,
) -> tuple[ModuleSpec, ...]:
    """Apply --only, --from and --skip, keeping pipeline order.

    Disabled modules run only when --only names them.
    """
    order = {spec.name: i for i, spec in enumerate(known)}
    chosen = [s for s in known if s.enabled]
    if only:
        wanted = {resolve(known, name, "--only", config).name for name in only}
        chosen = [s for s in known if s.name in wanted]
    if start is not None:
        first = order[resolve(known, start, "--from", config).name]
        chosen = [s for s in chosen if order[s.name] >= first]
    left_out = {resolve(known, name, "--skip", config).name for name in skip}
    return tuple(s for s in chosen if s.name not in left_out)


def resolve(known: Sequence[ModuleSpec], name: str, option: str,
            config: Config | None = None) -> ModuleSpec:
    """A module named by its name, the part after its number, or its number."""
    if not name.strip():
        raise FatalError(f"{option}: an empty module name")
    # ASCII digits only: "²" is a digit to str.isdigit but not to int().
    number = str(int(name)) if name.isascii() and name.isdigit() else None
    for attribute, wanted in (("name", name), ("short_name", name), ("number", number)):
        matches = [s for s in known if wanted is not None and getattr(s, attribute) == wanted]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            names = ", ".join(s.name for s in matches)
            raise FatalError(f"{option}: {name!r} is ambiguous: it names {names}")
    names = ", ".join(s.name for s in known)
    unlisted = _unlisted_file(config, name) if config is not None else None
    if unlisted:
        raise FatalError(f"{option}: modules/{unlisted} is not in the pipeline: "
                         f"{config.display if config else 'the config'} does not list it "
                         f"(known modules: {names})")
    raise FatalError(f"{option}: unknown module {name!r}{_did_you_mean(known, name)}; "
                     f"known modules: {names}")


def _did_you_mean(known: Sequence[ModuleSpec], name: str) -> str:
    import difflib

    candidates = {s.name: s.name for s in known}
    candidates.update({s.short_name: s.name for s in known if s.short_name})
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean {candidates[close[0]]!r}?)" if close else ""


def _unlisted_file(config: Config, name: str) -> str | None:
    """A file in modules/ that `name` would name, when the config's list leaves it out."""
    folder = config.root / "modules"
    if config.modules is None or not folder.is_dir():
        return None
    for entry in sorted(folder.iterdir()):
        stem = cfg.module_name(entry)
        match = cfg.NUMBERED.match(stem)
        names = {entry.name, stem}
        if match:
            names |= {match.group(2), str(int(match.group(1)))}
        if name in names:
            return entry.name
    return None


def _newest(recorded: tuple[Path, dict[str, Any]] | None, config: Config
            ) -> tuple[Path, dict[str, Any]] | None:
    """The newest record, or the record a run killed after it would be given by the
    next run's repair (gitcron/leftovers.py), whichever run is newer."""
    from gitcron import leftovers, records

    killed = leftovers.newest_unrecorded(config.log_dir, config.tz)
    if killed is None or records.is_rehearsal(killed[1]):
        return recorded
    if recorded is None:
        return killed
    try:
        newer = runid.sort_key(killed[1]["run_id"]) > runid.sort_key(
            str(recorded[1].get("run_id") or runid.of_file(recorded[0].name)))
    except ValueError:  # a record whose run id is not one
        newer = True
    return killed if newer else recorded


def resume_point(config: Config) -> tuple[Resumed | None, str | None, str]:
    """The module that failed or was interrupted in the newest run that counts (not
    a dry run, not a backfill); or None, and why there is nothing to resume."""
    from gitcron import records  # read only by --resume

    newest = _newest(records.resume_record(config.log_dir), config)
    if newest is None:
        raise FatalError(f"--resume: no run record in {config.log_dir} to resume from")
    path, record = newest
    run_id = str(record.get("run_id") or runid.of_file(path.name))
    resumed = Resumed(run_id, record, _original(config.log_dir, record))
    for module in record["modules"]:
        if isinstance(module, dict) and module.get("status") == "failed":
            return resumed, str(module.get("name")), ""
    return None, None, f"--resume: nothing to resume: no module failed in {path.name}"
