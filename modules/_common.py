"""Helpers shared by the shipped modules (discovery ignores names starting with `_`).

A module learns everything from its environment (see docs/module-contract.md):
where the config is, where logs and data go, when this run started,
and whether this is a dry run or a forced one. (PIPELINE_LAST_RUN_DATE is
there too: 1.file_retrieval lets a URL ask for what is new since then.)
Wrap a module's `main` in `common.run(main)`: a bad setting becomes one line on
stderr and exit 2, and SIGTERM (a timeout or a cancel) unwinds `finally`
blocks, so temporary files are removed.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import re
import signal
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timezone, tzinfo
from pathlib import Path

# Names for annotations only: a module's start-up does not import typing (7 ms).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO, NoReturn

SKIP = 10  # exit code: skipped, conditions not met
FAILED = 1  # exit code: the work failed
BAD_SETTINGS = 2  # exit code: the module's settings are wrong


class SettingsError(Exception):
    """A setting or environment variable is wrong; the message names it."""


def run(main: Callable[[], int]) -> NoReturn:
    """Run a module's `main` and exit with its code."""
    signal.signal(signal.SIGTERM, _terminated)
    try:
        code = main()
    except SettingsError as exc:
        print(f"{os.environ.get('PIPELINE_MODULE', Path(sys.argv[0]).stem)}: {exc}",
              file=sys.stderr)
        code = BAD_SETTINGS
    sys.exit(code)


def _terminated(signum: int, frame: object) -> NoReturn:
    raise SystemExit(128 + signum)


def variable(name: str) -> str:
    try:
        return os.environ[name]
    except KeyError:
        raise SettingsError(f"{name} is not set: run modules through orchestrator.py") from None


def config_path() -> Path:
    return Path(variable("PIPELINE_CONFIG"))


YAML_SUFFIXES = (".yaml", ".yml")


@functools.cache
def settings() -> dict[str, Any]:
    """The whole config file, read once; a module reads its own keys from it.

    `config.yaml` / `.yml` is read with PyYAML's safe_load, anything else as
    JSON: the same keys either way (docs/config.md, YAML).
    """
    path = config_path()
    try:
        text = path.read_text(encoding="utf-8")
        data = parse_yaml(text) if path.suffix.lower() in YAML_SUFFIXES else json.loads(text)
    except RecursionError:
        raise SettingsError(f"{path}: cannot read it: nested too deep") from None
    except (OSError, ValueError) as exc:
        raise SettingsError(f"{path}: cannot read it: {exc}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: the top level must be an object (a mapping)")
    return data


def parse_yaml(text: str) -> Any:
    """YAML's own errors (with their line) as ValueError; imported only for a YAML config.

    Booleans as the orchestrator reads them (YAML 1.2): only true and false; `on`,
    `off`, `yes` and `no` are words.
    """
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def boolean(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> bool | str:
        text = str(loader.construct_scalar(node))
        return text.lower() == "true" if text.lower() in ("true", "false") else text

    Loader.add_constructor("tag:yaml.org,2002:bool", boolean)
    Loader.add_implicit_resolver("tag:yaml.org,2002:bool",
                                 re.compile(r"^(?:[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])$"),
                                 list("tTfF"))
    try:
        return yaml.load(text, Loader=Loader)  # a SafeLoader: no custom tags
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ValueError(f"{where}{exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ValueError(" ".join(str(exc).split())) from None


def section(name: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """A module's own object in the config, its keys checked against `defaults`.

    A key of the wrong type, or one `defaults` does not know (a typo), is an error.
    """
    value = settings().get(name, {})
    if not isinstance(value, dict):
        raise SettingsError(f"{config_path().name}: {name}: must be an object")
    merged = dict(defaults)
    for key, given in value.items():
        if key not in defaults:
            raise SettingsError(f"{config_path().name}: {name}.{key}: unknown key "
                                f"(known: {', '.join(defaults)})")
        merged[key] = checked(f"{name}.{key}", given, defaults[key])
    return merged


def checked(where: str, value: Any, default: Any) -> Any:
    """`value`, if it has the type of `default`; numbers must be finite and not negative."""
    if isinstance(default, (bool, str, list, dict)):
        ok, kind = type(value) is type(default), KINDS[type(default)]
    else:
        wanted = (int,) if isinstance(default, int) else (int, float)
        ok = type(value) in wanted and math.isfinite(value) and value >= 0
        kind = "a whole number, 0 or more" if wanted == (int,) else "a number, 0 or more"
    if not ok:
        raise SettingsError(f"{config_path().name}: {where}: must be {kind} (got {value!r})")
    return value


KINDS = {bool: "true or false", str: "a string", list: "a list", dict: "an object"}


def project_root() -> Path:
    return config_path().parent


def log_dir() -> Path:
    return Path(variable("PIPELINE_LOG_DIR"))


def data_dir() -> Path:
    return log_dir() / "data"


def run_id() -> str:
    return variable("PIPELINE_RUN_ID")


def run_started() -> datetime:
    text = variable("PIPELINE_RUN_STARTED")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise SettingsError(f"PIPELINE_RUN_STARTED: not an ISO 8601 time (got {text!r})") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def zone() -> tzinfo:
    """The config's `timezone`, in which run ids are written (UTC if unknown)."""
    try:
        return _zone(settings().get("timezone", "UTC"))
    except ValueError:
        return timezone.utc


def _zone(name: object) -> tzinfo:
    """An IANA zone; ValueError for anything else. zoneinfo is imported only when needed."""
    if name == "UTC":
        return timezone.utc
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)  # type: ignore[arg-type]
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(name) from None


def dry_run() -> bool:
    return os.environ.get("PIPELINE_DRY_RUN") == "1"


def force() -> bool:
    return os.environ.get("PIPELINE_FORCE") == "1"


def sha256_of(path: Path) -> str:
    import hashlib  # here, not at the top: a module that hashes nothing starts faster

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def temporary_beside(path: Path) -> Path:
    """A new empty file in `path`'s folder, hidden, to be renamed onto `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    import tempfile  # here, not at the top: a module that writes nothing starts faster

    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    return Path(name)


def commit_file(tmp: Path, path: Path) -> None:
    """fsync `tmp`, rename it onto `path`, fsync the folder: all or nothing."""
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """Write `path` through a temporary file: never a half file under its name."""
    tmp = temporary_beside(path)
    try:
        with open(tmp, "wb") as handle:
            yield handle
        commit_file(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes) -> None:
    with atomic_writer(path) as handle:
        handle.write(data)


def write_json(path: Path, value: Any) -> None:
    write_atomic(path, (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode())


def read_json(path: Path, default: Any) -> Any:
    """A JSON state file, or `default` if there is none; a broken one is an error."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except (ValueError, RecursionError) as exc:
        reason = "nested too deep" if isinstance(exc, RecursionError) else str(exc)
        raise SettingsError(f"{path}: not valid JSON ({reason}); "
                            "move it away to start afresh") from None
    if type(value) is not type(default):
        raise SettingsError(f"{path}: not {KINDS.get(type(default), 'what it should be')}; "
                            "move it away to start afresh")
    return value


def counted(count: int, noun: str) -> str:
    """(1, "row") -> "1 row"; (1461, "row") -> "1,461 rows"."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def size_text(count: int) -> str:
    """1536 -> "1.5 KiB"."""
    if count < 1024:
        return f"{count} bytes"
    for unit in ("KiB", "MiB", "GiB"):
        count /= 1024
        if count < 1024 or unit == "GiB":
            return f"{count:.1f} {unit}"
    raise AssertionError("unreachable")
