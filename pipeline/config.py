"""Load, validate and atomically save config.json; a typed view of it.

Every key is optional. Unknown top-level keys belong to the modules and are
kept untouched, in their order, whenever the file is written.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from typing import Any, Literal, NoReturn

from pipeline.codes import FatalError

PushMode = Literal["auto", "always", "never"]
CommitMode = Literal["always", "changes"]
ConfigKind = Literal["json", "yaml"]

DEFAULT_TIMEOUT_SECONDS = 3600.0
DEFAULT_LOG_DIR = "data and logs"
DEFAULT_COMMIT_MESSAGE = "pipeline: {status} run {run_id} [skip ci]"
MODULE_KEYS = frozenset(
    {"path", "critical", "timeout_seconds", "retries", "retry_delay_seconds", "enabled",
     "on_failure", "github_token", "unbuffered"}
)
GIT_KEYS = frozenset(
    {"push", "remote", "branch", "paths", "commit_message", "author_name",
     "author_email", "push_retries", "commit"}
)
# A module file name starts with a number, then ".", "_" or "-" (SPEC: discovery).
NUMBERED = re.compile(r"^(\d+)[._-](.+)$")


@dataclass(frozen=True)
class ModuleSpec:
    """One module of the pipeline, as configured (or discovered)."""

    path: Path  # absolute
    rel: str  # relative to the config's folder, with forward slashes
    name: str  # file name without its extension: "1.file_retrieval"
    command: tuple[str, ...]
    critical: bool = True
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    retries: int = 0
    retry_delay_seconds: float = 0.0
    enabled: bool = True
    # The recovery script, run once after the module failed for good; a spec of its
    # own named "<module>.on_failure", with the module's timeout and no retries.
    on_failure: ModuleSpec | None = None
    github_token: bool = False  # keep GITHUB_TOKEN and GH_TOKEN in its environment
    unbuffered: bool = True  # PYTHONUNBUFFERED=1 unless already set

    @property
    def number(self) -> str | None:
        match = NUMBERED.match(self.name)
        return str(int(match.group(1))) if match else None

    @property
    def short_name(self) -> str | None:
        match = NUMBERED.match(self.name)
        return match.group(2) if match else None


@dataclass(frozen=True)
class GitSettings:
    push: PushMode = "auto"
    remote: str = "origin"
    branch: str | None = None
    paths: tuple[str, ...] = ()
    commit_message: str = DEFAULT_COMMIT_MESSAGE
    author_name: str | None = None
    author_email: str | None = None
    push_retries: int = 3
    commit: CommitMode = "always"

    def wanted(self, flag: bool | None, dry_run: bool, env: Mapping[str, str]) -> bool:
        """Commit and push back? Never under --dry-run; --push/--no-push win over
        `push`; "auto" pushes in GitHub Actions or wherever a GITHUB_TOKEN is set."""
        if dry_run:
            return False
        if flag is not None:
            return flag
        if self.push == "auto":
            return env.get("GITHUB_ACTIONS") == "true" or bool(env.get("GITHUB_TOKEN"))
        return self.push == "always"


@dataclass(frozen=True)
class Webhook:
    url: str  # may hold ${NAME} placeholders, filled in when sent
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Email:
    to: tuple[str, ...]
    sender: str
    host: str
    port: int = 587
    starttls: bool = False
    ssl: bool = False  # implicit TLS (port 465)
    username_env: str | None = None
    password_env: str | None = None
    attach_log: bool = False


@dataclass(frozen=True)
class Channel:
    """One `notify` entry: where to send, for which run statuses."""

    on: tuple[str, ...] = ("failed", "interrupted")
    webhook: Webhook | None = None
    email: Email | None = None


PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand(text: str, env: Mapping[str, str]) -> str:
    """`${NAME}` -> the variable NAME (checked to be set when the config is loaded)."""
    return PLACEHOLDER.sub(lambda match: env.get(match.group(1), ""), text)


@dataclass(frozen=True)
class Config:
    path: Path  # absolute path of the config file
    display: str  # the path as the user gave it, for messages
    raw: dict[str, Any]  # the file's content, key order kept
    modules: tuple[ModuleSpec, ...] | None  # None: discover them in modules/
    log_dir: Path
    timezone_name: str
    tz: tzinfo
    default_timeout_seconds: float
    mask_env: tuple[str, ...]
    git: GitSettings
    last_run_date: str | None
    window_minutes: float | None = None
    notify: tuple[Channel, ...] = ()
    schedule: str | None = None  # a cron line, UTC
    schedule_grace_minutes: float = 60.0
    kind: ConfigKind = "json"

    @property
    def root(self) -> Path:
        return self.path.parent


def load(path_arg: str) -> Config:
    """Read and validate the config file; raise FatalError naming any fault."""
    path = Path(path_arg).absolute()
    raw = _read_json(path, path_arg)
    check = _Checker(path_arg)
    default_timeout = check.positive(raw, "default_timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
    timezone_name = check.string(raw, "timezone", "UTC")
    last_run_date = check.optional_string(raw, "last_run_date")
    if last_run_date is not None:
        check.timestamp("last_run_date", last_run_date)
    modules = None
    if "modules" in raw:
        modules = _modules(check, raw["modules"], path.parent, default_timeout)
    return Config(
        path=path,
        display=path_arg,
        raw=raw,
        modules=modules,
        log_dir=path.parent / check.string(raw, "log_dir", DEFAULT_LOG_DIR, nonempty=True),
        timezone_name=timezone_name,
        tz=check.zone("timezone", timezone_name),
        default_timeout_seconds=default_timeout,
        mask_env=tuple(check.string_list(raw, "mask_env")),
        git=_git(check, raw.get("git", {})),
        last_run_date=last_run_date,
    )


def _read_json(path: Path, display: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FatalError(f"{display}: config file not found (use --config PATH)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FatalError(f"{display}: cannot read the config file: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FatalError(
            f"{display}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(data, dict):
        raise FatalError(f"{display}: must hold a JSON object, not {type(data).__name__}")
    return data


def _modules(
    check: _Checker, entries: Any, root: Path, default_timeout: float
) -> tuple[ModuleSpec, ...]:
    if not isinstance(entries, list):
        check.fail("modules", "must be a list of paths or objects with a path")
    specs = tuple(
        _module(check, f"modules[{i}]", entry, root, default_timeout)
        for i, entry in enumerate(entries)
    )
    _check_unique(check, specs)
    return specs


def _module(
    check: _Checker, key: str, entry: Any, root: Path, default_timeout: float
) -> ModuleSpec:
    if isinstance(entry, str):
        entry = {"path": entry}
    if not isinstance(entry, dict):
        check.fail(key, "must be a path or an object with a path")
    unknown = sorted(set(entry) - MODULE_KEYS)
    if unknown:
        check.fail(f"{key}.{unknown[0]}", f"unknown key (known: {', '.join(sorted(MODULE_KEYS))})")
    if "path" not in entry:
        check.fail(f"{key}.path", "is required")
    rel = check.string(entry, "path", "", nonempty=True, where=key)
    timeout = check.positive(entry, "timeout_seconds", default_timeout, where=key)
    spec = module_spec(
        module_path(check.display, f"{key}.path", root, rel),
        root,
        critical=check.boolean(entry, "critical", True, where=key),
        timeout_seconds=timeout,
        retries=check.count(entry, "retries", 0, where=key),
        retry_delay_seconds=check.non_negative(entry, "retry_delay_seconds", 0.0, where=key),
        enabled=check.boolean(entry, "enabled", True, where=key),
        github_token=check.boolean(entry, "github_token", False, where=key),
        unbuffered=check.boolean(entry, "unbuffered", True, where=key),
        display=check.display,
        key=f"{key}.path",
    )
    recovery = check.optional_string(entry, "on_failure", where=key)
    if recovery is None:
        return spec
    if not recovery.strip():
        check.fail(f"{key}.on_failure", "must be a non-empty path")
    return replace(spec, on_failure=recovery_spec(check.display, f"{key}.on_failure", root,
                                                  recovery, spec))


def recovery_spec(display: str, key: str, root: Path, rel: str, module: ModuleSpec
                  ) -> ModuleSpec:
    """A module's `on_failure` script: it must exist and be runnable now, not at 06:00."""
    path = module_path(display, key, root, rel)
    return ModuleSpec(
        path=path, rel=path.relative_to(root.resolve()).as_posix(),
        name=f"{module.name}.on_failure", command=module_command(path, display, key),
        critical=module.critical, timeout_seconds=module.timeout_seconds, retries=0,
        github_token=module.github_token, unbuffered=module.unbuffered,
    )


def module_path(display: str, key: str, root: Path, rel: str) -> Path:
    """The module's absolute path; it must exist and stay inside `root`."""
    path = (root / rel).resolve()
    if not path.is_relative_to(root.resolve()):
        raise FatalError(f"{display}: {key}: {rel!r} leaves the project folder")
    if not path.is_file():
        raise FatalError(f"{display}: {key}: no such module file: {rel!r}")
    return path


def module_spec(path: Path, root: Path, *, display: str, key: str, **settings: Any) -> ModuleSpec:
    """A ModuleSpec for an existing file; raise FatalError if it cannot run."""
    return ModuleSpec(
        path=path,
        rel=path.relative_to(root.resolve()).as_posix(),
        name=module_name(path),
        command=module_command(path, display, key),
        **settings,
    )


def module_name(path: Path) -> str:
    """A module's name is its file name without the extension.

    `3.fetch` (an executable with no extension) keeps its whole name: its stem
    would be the bare number.
    """
    if NUMBERED.match(path.name) and not NUMBERED.match(path.stem):
        return path.name
    return path.stem


def module_command(path: Path, display: str, key: str) -> tuple[str, ...]:
    """SPEC: `.py` runs with our interpreter, `.sh` with bash, other executables directly."""
    if path.suffix == ".py":
        return (sys.executable, str(path))
    if path.suffix == ".sh":
        return ("bash", str(path))
    if os.stat(path).st_mode & stat.S_IXUSR:
        return (str(path),)
    raise FatalError(
        f"{display}: {key}: {path.name!r} is neither .py, .sh nor executable (chmod +x it)"
    )


def _check_unique(check: _Checker, specs: tuple[ModuleSpec, ...]) -> None:
    seen: dict[str, int] = {}
    for i, spec in enumerate(specs):
        if spec.name in seen:
            check.fail(f"modules[{i}]", f"module {spec.name!r} is listed twice")
        seen[spec.name] = i


def _git(check: _Checker, raw: Any) -> GitSettings:
    if not isinstance(raw, dict):
        check.fail("git", "must be an object")
    unknown = sorted(set(raw) - GIT_KEYS)
    if unknown:
        check.fail(f"git.{unknown[0]}", f"unknown key (known: {', '.join(sorted(GIT_KEYS))})")
    push = check.string(raw, "push", "auto", where="git")
    if push not in ("auto", "always", "never"):
        check.fail("git.push", f'must be "auto", "always" or "never" (got {push!r})')
    message = check.string(raw, "commit_message", DEFAULT_COMMIT_MESSAGE, where="git")
    check.template("git.commit_message", message)
    return GitSettings(
        push=push,  # type: ignore[arg-type]  # checked against the Literal just above
        remote=check.string(raw, "remote", "origin", nonempty=True, where="git"),
        branch=check.optional_string(raw, "branch", where="git"),
        paths=tuple(check.string_list(raw, "paths", where="git")),
        commit_message=message,
        author_name=check.optional_string(raw, "author_name", where="git"),
        author_email=check.optional_string(raw, "author_email", where="git"),
        push_retries=check.count(raw, "push_retries", 3, where="git"),
        commit=_commit_mode(check, raw),
    )


def _commit_mode(check: _Checker, raw: dict[str, Any]) -> CommitMode:
    mode = check.string(raw, "commit", "always", where="git")
    if mode not in ("always", "changes"):
        check.fail("git.commit", f'must be "always" or "changes" (got {mode!r})')
    return mode  # type: ignore[return-value]  # checked against the Literal just above


class _Checker:
    """Typed reads of config values; a wrong one raises FatalError naming file and key."""

    def __init__(self, display: str) -> None:
        self.display = display

    def fail(self, key: str, problem: str) -> NoReturn:
        raise FatalError(f"{self.display}: {key}: {problem}")

    def _get(self, obj: dict[str, Any], key: str, default: Any, where: str) -> tuple[str, Any]:
        return (f"{where}.{key}" if where else key), obj.get(key, default)

    def string(
        self, obj: dict[str, Any], key: str, default: str, *, nonempty: bool = False,
        where: str = "",
    ) -> str:
        name, value = self._get(obj, key, default, where)
        if not isinstance(value, str) or (nonempty and not value.strip()):
            kind = "a non-empty string" if nonempty else "a string"
            self.fail(name, f"must be {kind} (got {_show(value)})")
        return value

    def optional_string(self, obj: dict[str, Any], key: str, *, where: str = "") -> str | None:
        name, value = self._get(obj, key, None, where)
        if value is not None and not isinstance(value, str):
            self.fail(name, f"must be a string or null (got {_show(value)})")
        return value

    def string_list(self, obj: dict[str, Any], key: str, *, where: str = "") -> list[str]:
        name, value = self._get(obj, key, [], where)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(name, f"must be a list of non-empty strings (got {_show(value)})")
        return value

    def boolean(self, obj: dict[str, Any], key: str, default: bool, *, where: str = "") -> bool:
        name, value = self._get(obj, key, default, where)
        if not isinstance(value, bool):
            self.fail(name, f"must be true or false (got {_show(value)})")
        return value

    def _number(self, obj: dict[str, Any], key: str, default: float, where: str) -> tuple[str, Any]:
        name, value = self._get(obj, key, default, where)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            self.fail(name, f"must be a number (got {_show(value)})")
        return name, value

    def positive(self, obj: dict[str, Any], key: str, default: float, *, where: str = "") -> float:
        name, value = self._number(obj, key, default, where)
        if value <= 0 or value == float("inf"):
            self.fail(name, f"must be a positive number of seconds (got {_show(value)})")
        return float(value)

    def non_negative(
        self, obj: dict[str, Any], key: str, default: float, *, where: str = ""
    ) -> float:
        name, value = self._number(obj, key, default, where)
        if value < 0 or value == float("inf"):
            self.fail(name, f"must be zero or a positive number of seconds (got {_show(value)})")
        return float(value)

    def count(self, obj: dict[str, Any], key: str, default: int, *, where: str = "") -> int:
        name, value = self._get(obj, key, default, where)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.fail(name, f"must be a whole number, 0 or more (got {_show(value)})")
        return value

    def zone(self, key: str, name: str) -> tzinfo:
        try:
            return zone(name)
        except ValueError:
            self.fail(key, f"unknown IANA time zone {name!r} (e.g. \"UTC\", \"Europe/Paris\")")

    def timestamp(self, key: str, value: str) -> None:
        try:
            parsed = parse_timestamp(value)
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            self.fail(key, f"must be an ISO 8601 time with offset (got {value!r})")

    def template(self, key: str, value: str) -> None:
        try:
            value.format(run_id="", status="")
        except (KeyError, IndexError, ValueError) as exc:
            self.fail(key, f"only {{run_id}} and {{status}} may be used ({exc!r} is not known)")


def _show(value: Any) -> str:
    return json.dumps(value)[:60]


def zone(name: str) -> tzinfo:
    """An IANA zone; "UTC" works even where the system has no zone database."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        if name == "UTC":
            return timezone.utc
        raise ValueError(name) from None


def parse_timestamp(value: str) -> datetime:
    """ISO 8601; accepts a trailing "Z", which Python 3.10's fromisoformat does not."""
    return datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)


def set_key(config: Config, key: str, value: Any) -> None:
    """Set one top-level key in the file as it is now, atomically.

    The file is read again: a module may have changed its own settings in it
    during the run. Key order and unknown keys are kept; two-space indent.
    """
    data = _read_json(config.path, config.display)
    data[key] = value
    write_atomic(config.path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def load_env(root: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` over the `.env` file of `root`, if there is one: a variable
    already set is never overridden. python-dotenv is imported only when needed."""
    path = root / ".env"
    if not path.is_file():
        return dict(environ)
    from dotenv import dotenv_values

    values = {k: v for k, v in dotenv_values(path).items() if v is not None}
    return {**values, **environ}


def write_atomic(path: Path, text: str) -> None:
    """Temporary file in the same folder, flush, fsync, rename (pipx's metadata).

    A crash at any instant leaves either the old file or the new one.
    """
    mode = _mode_of(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _mode_of(path: Path) -> int:
    """Keep the file's mode: mkstemp creates 0600, which would hide it from others."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); not possible on every platform."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
