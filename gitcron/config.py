"""Load, validate and atomically save config.json; a typed view of it.

Every key is optional. Unknown top-level keys belong to the modules and are
kept untouched, in their order, whenever the file is written.
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
import string
import sys
from collections.abc import Collection, Mapping
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from typing import Any, Literal, NamedTuple, NoReturn

from gitcron import retry
from gitcron.codes import MODULE_OK, MODULE_SKIP, FatalError

PushMode = Literal["auto", "always", "never"]
CommitMode = Literal["always", "changes"]
ConfigKind = Literal["json", "yaml"]

DEFAULT_TIMEOUT_SECONDS = 3600.0
DEFAULT_LOG_DIR = "data and logs"
DEFAULT_COMMIT_MESSAGE = "pipeline: {status} run {run_id} [skip ci]"
MODULE_KEYS = frozenset(
    {"path", "critical", "timeout_seconds", "retries", "retry_delay_seconds", "enabled",
     "on_failure", "github_token", "unbuffered", "retry_on_exit_codes", "retry_backoff",
     "retry_max_delay_seconds"}
)
DEFAULT_RETRY_MAX_DELAY_SECONDS = 3600.0
GIT_KEYS = frozenset(
    {"push", "remote", "branch", "paths", "commit_message", "author_name",
     "author_email", "push_retries", "commit"}
)
# A module file name starts with a number, then ".", "_" or "-" (README: "config.json", `modules`).
NUMBERED = re.compile(r"^(\d+)[._-](.+)$")


class ModuleSpec(NamedTuple):
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
    retry_on_exit_codes: tuple[int, ...] | None = None  # None: every failure is retried
    retry_backoff: retry.Backoff = "fixed"
    retry_max_delay_seconds: float = DEFAULT_RETRY_MAX_DELAY_SECONDS

    @property
    def retry_policy(self) -> retry.Policy:
        return retry.Policy(self.retries, self.retry_delay_seconds, self.retry_on_exit_codes,
                            self.retry_backoff, self.retry_max_delay_seconds)

    @property
    def number(self) -> str | None:
        match = NUMBERED.match(self.name)
        return str(int(match.group(1))) if match else None

    @property
    def short_name(self) -> str | None:
        match = NUMBERED.match(self.name)
        return match.group(2) if match else None


class GitSettings(NamedTuple):
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
        return self.decide(flag, dry_run, env)[0]

    def decide(self, flag: bool | None, dry_run: bool, env: Mapping[str, str]
               ) -> tuple[bool, str]:
        """Commit and push back?, and why. Never under --dry-run; --push/--no-push win
        over `push`; "auto" pushes in GitHub Actions or wherever a GITHUB_TOKEN is set."""
        if dry_run:
            return False, "--dry-run"
        if flag is not None:
            return flag, "--push" if flag else "--no-push"
        if self.push != "auto":
            return self.push == "always", f"git.push {self.push}"
        if env.get("GITHUB_ACTIONS") == "true":
            return True, "git.push auto: GITHUB_ACTIONS is set"
        if env.get("GITHUB_TOKEN"):
            return True, "git.push auto: GITHUB_TOKEN is set"
        return False, "git.push auto: neither GITHUB_ACTIONS nor GITHUB_TOKEN is set"


class Webhook(NamedTuple):
    url: str  # may hold ${NAME} placeholders, filled in when sent
    headers: tuple[tuple[str, str], ...] = ()


class Email(NamedTuple):
    to: tuple[str, ...]
    sender: str
    host: str
    port: int = 587
    starttls: bool = False
    ssl: bool = False  # implicit TLS (port 465)
    username_env: str | None = None
    password_env: str | None = None
    attach_log: bool = False


class Channel(NamedTuple):
    """One `notify` entry: where to send, for which run statuses."""

    on: tuple[str, ...] = ("failed", "interrupted")
    webhook: Webhook | None = None
    email: Email | None = None


PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand(text: str, env: Mapping[str, str]) -> str:
    """`${NAME}` -> the variable NAME (checked to be set when the config is loaded)."""
    return PLACEHOLDER.sub(lambda match: env.get(match.group(1), ""), text)


class RetryDefaults(NamedTuple):
    """The top-level retry keys: what a module gets unless its entry sets its own."""

    on_exit_codes: tuple[int, ...] | None = None
    backoff: retry.Backoff = "fixed"
    max_delay_seconds: float = DEFAULT_RETRY_MAX_DELAY_SECONDS


class Config(NamedTuple):
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
    text: str = ""  # the file as it was read
    retry_defaults: RetryDefaults = RetryDefaults()
    metrics_file: Path | None = None  # node_exporter textfile, written after each run

    def unchanged(self) -> bool:
        """The file still holds what was loaded: it needs no second check."""
        try:
            return bool(self.text) and self.path.read_text(encoding="utf-8") == self.text
        except (OSError, UnicodeDecodeError):
            return False

    @property
    def root(self) -> Path:
        return self.path.parent


# The orchestrator's own top-level keys; any other key belongs to the modules.
ORCHESTRATOR_KEYS = (
    "modules", "log_dir", "timezone", "default_timeout_seconds", "mask_env", "git",
    "last_run_date", "window_minutes", "notify", "schedule", "schedule_grace_minutes",
    "retry_on_exit_codes", "retry_backoff", "retry_max_delay_seconds", "metrics_file",
)
CONFIG_NAMES = ("config.json", "config.yaml", "config.yml")
MAX_SECONDS = 7 * 24 * 3600.0  # a week: far below the event loop's own limit (~24.8 days)
MAX_RETRIES = 100
MAX_MINUTES = 10 * 366 * 24 * 60.0  # a window or a grace of ten years: more is a typo
RUN_STATUSES = ("success", "partial", "failed", "interrupted")
MAX_CONFIG_BYTES = 1 << 20  # a config is a page of settings; more is a mistake (or /dev/zero)
MAX_DEPTH = 64  # a config nested deeper is not one, and would strain every walk of it
MAX_ENV_BYTES = 1 << 20  # Linux passes at most ARG_MAX (2 MiB, often less) to a program
# Linux's MAX_ARG_STRLEN (128 KiB) less the NUL: execve() refuses a longer NAME=value (E2BIG).
MAX_VARIABLE_BYTES = 128 * 1024 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")  # json.loads lets "\\ud800" through; UTF-8 cannot


def find(path_arg: str | None, cwd: Path | None = None) -> str:
    """The config file to use: `--config`, else the first of CONFIG_NAMES in the
    current folder, else in the folder of orchestrator.py (so cron needs no `cd`)."""
    if path_arg is not None:
        return path_arg
    here = Path.cwd() if cwd is None else cwd
    for folder in (here, *entry_folder()):
        found = [folder / name for name in CONFIG_NAMES if (folder / name).is_file()]
        if len(found) > 1:
            raise FatalError(f"{found[0]} and {found[1]}: two config files in one folder; "
                             "keep one, or choose with --config PATH")
        if found:
            return str(found[0]) if folder != here else found[0].name
    raise FatalError("config.json: config file not found here or beside orchestrator.py "
                     "(use --config PATH)")


def entry_folder() -> tuple[Path, ...]:
    """The folder of the orchestrator.py that was started, if one was: the package
    itself may be installed anywhere (`gitcron` from a virtual environment)."""
    script = getattr(sys.modules.get("__main__"), "__file__", None)
    if script and Path(script).name == "orchestrator.py":
        return (Path(script).resolve().parent,)
    return ()


def load(path_arg: str) -> Config:
    """Read and validate the config file; raise FatalError naming any fault."""
    if "\0" in path_arg:
        raise FatalError("--config: the path holds a NUL character")
    path = Path(path_arg).absolute()
    kind = kind_of(path)
    text = read_text(path, path_arg)
    raw = parse(text, path_arg, kind)
    check = _Checker(path_arg)
    _check_typos(check, raw)
    default_timeout = check.positive(raw, "default_timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
    timezone_name = check.string(raw, "timezone", "UTC")
    last_run_date = check.optional_string(raw, "last_run_date")
    if last_run_date is not None:
        check.timestamp("last_run_date", last_run_date)
    retry_defaults = _retry_defaults(check, raw)
    modules = None
    if "modules" in raw:
        modules = _modules(check, raw["modules"], path.parent, default_timeout, retry_defaults)
    return Config(
        path=path,
        display=path_arg,
        raw=raw,
        modules=modules,
        log_dir=path.parent / check.outside_git("log_dir", check.path(raw, "log_dir",
                                                                       DEFAULT_LOG_DIR)),
        timezone_name=timezone_name,
        tz=check.zone("timezone", timezone_name),
        default_timeout_seconds=default_timeout,
        mask_env=tuple(check.string_list(raw, "mask_env")),
        git=_git(check, raw.get("git", {})),
        last_run_date=last_run_date,
        window_minutes=check.optional_minutes(raw, "window_minutes"),
        notify=_notify(check, raw.get("notify", [])),
        schedule=_schedule(check, raw),
        schedule_grace_minutes=check.minutes(raw, "schedule_grace_minutes", 60.0),
        kind=kind,
        text=text,
        retry_defaults=retry_defaults,
        metrics_file=_metrics_file(check, raw, path.parent),
    )


def _metrics_file(check: _Checker, raw: dict[str, Any], root: Path) -> Path | None:
    """Relative to the config's folder, like the modules; null or absent: none."""
    if raw.get("metrics_file") is None:
        return None
    return root / check.path(raw, "metrics_file", "")


def kind_of(path: Path | str) -> ConfigKind:
    """How a config file is read: by its extension, `.yaml`/`.yml` or else JSON."""
    return "yaml" if os.path.splitext(path)[1].lower() in (".yaml", ".yml") else "json"


def read(path: Path, display: str, kind: ConfigKind) -> dict[str, Any]:
    """The file's top-level mapping, key order kept; FatalError naming the file."""
    return parse(read_text(path, display), display, kind)


def read_text(path: Path, display: str) -> str:
    """The file's text, if it is UTF-8 and at most MAX_CONFIG_BYTES (`/dev/zero` never ends)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise FatalError(f"{display}: larger than {MAX_CONFIG_BYTES >> 20} MiB: not a config "
                             "file")
        return data.decode("utf-8")
    except FileNotFoundError:
        raise FatalError(f"{display}: config file not found") from None
    except UnicodeDecodeError as exc:
        raise FatalError(f"{display}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise FatalError(f"{display}: cannot read the config file: {exc.strerror}") from None


def parse(text: str, display: str, kind: ConfigKind) -> dict[str, Any]:
    """The text's top-level mapping, key order kept; FatalError naming the file."""
    data = _parse_yaml(text, display) if kind == "yaml" else _parse_json(text, display)
    if not isinstance(data, dict):
        what = "mapping" if kind == "yaml" else "JSON object"
        raise FatalError(f"{display}: must hold a {what} at the top, not {type(data).__name__}")
    _check_plain(data, display, "", ())
    return data


def _check_plain(value: Any, display: str, where: str, parents: tuple[int, ...]) -> None:
    """`value` is plain data, as JSON writes it: text keys, real characters, no
    cycle (a YAML alias inside itself), nested at most MAX_DEPTH deep."""
    if isinstance(value, str):
        _check_text(value, display, where or "the top")
        return
    if isinstance(value, (bool, int, float)) or value is None:
        return
    if not isinstance(value, (dict, list)):
        raise FatalError(f"{display}: {where or 'the top'}: a {type(value).__name__} is not "
                         "a config value (text, number, true/false, null, list or mapping)")
    if id(value) in parents:
        raise FatalError(f"{display}: {where}: holds itself (an alias inside its own anchor)")
    if len(parents) >= MAX_DEPTH:
        raise FatalError(f"{display}: {where}: nested too deep to be a config")
    inner = (*parents, id(value))
    items = enumerate(value) if isinstance(value, list) else value.items()
    for key, item in items:
        if isinstance(value, list):
            inner_where = f"{where}[{key}]"
        elif not isinstance(key, str):
            raise FatalError(f"{display}: {where or 'the top'}: the key {_show(key)} is not "
                             "text (quote it)")
        else:
            _check_text(key, display, f"a key in {where or 'the top'}")
            inner_where = f"{where}.{key}" if where else key
        _check_plain(item, display, inner_where, inner)


def _check_text(text: str, display: str, where: str) -> None:
    found = _SURROGATE.search(text)
    if found:
        raise FatalError(f"{display}: {where}: holds a lone surrogate "
                         f"(\\u{ord(found.group()):04x}), which is not a character")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise _DuplicateKey(key)
        data[key] = value
    return data


class _DuplicateKey(ValueError):
    pass


def _parse_json(text: str, display: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise FatalError(
            f"{display}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except _DuplicateKey as exc:
        raise FatalError(f"{display}: the key {exc.args[0]!r} appears twice in one object; "
                         "keep one") from None
    except ValueError:  # int() reads at most 4300 digits (sys.get_int_max_str_digits)
        raise FatalError(f"{display}: not valid JSON: a number of more than "
                         f"{sys.get_int_max_str_digits()} digits") from None
    except RecursionError:
        raise FatalError(f"{display}: nested too deep to be a config") from None


def _parse_yaml(text: str, display: str) -> Any:
    from gitcron import yamlconf  # PyYAML is imported only for a YAML config

    return yamlconf.parse(text, display)


def _check_typos(check: _Checker, raw: dict[str, Any]) -> None:
    """An unknown key that is a near miss of ours is a typo, not a module setting:
    `mask_envs` would otherwise leave a password unmasked."""
    for key in raw:
        if key in ORCHESTRATOR_KEYS:
            continue
        close = _close_match(key, ORCHESTRATOR_KEYS)
        if close:
            raise FatalError(f"{check.display}: unknown key {key!r}: did you mean {close[0]!r}?")


def _retry_defaults(check: _Checker, raw: dict[str, Any]) -> RetryDefaults:
    return RetryDefaults(
        on_exit_codes=check.exit_codes(raw, "retry_on_exit_codes", None),
        backoff=check.backoff(raw, "retry_backoff", "fixed"),
        max_delay_seconds=check.positive(raw, "retry_max_delay_seconds",
                                         DEFAULT_RETRY_MAX_DELAY_SECONDS),
    )


def retry_settings(check: _Checker, entry: dict[str, Any], key: str,
                   defaults: RetryDefaults) -> dict[str, Any]:
    """A module's retry keys, its own or the top-level defaults."""
    settings = {
        "retries": check.count(entry, "retries", 0, where=key),
        "retry_delay_seconds": check.non_negative(entry, "retry_delay_seconds", 0.0, where=key),
        "retry_on_exit_codes": check.exit_codes(entry, "retry_on_exit_codes",
                                                defaults.on_exit_codes, where=key),
        "retry_backoff": check.backoff(entry, "retry_backoff", defaults.backoff, where=key),
        "retry_max_delay_seconds": check.positive(entry, "retry_max_delay_seconds",
                                                  defaults.max_delay_seconds, where=key),
    }
    if (settings["retry_backoff"] == "exponential" and settings["retries"]
            and not settings["retry_delay_seconds"]):
        check.fail(f"{key}.retry_delay_seconds", 'retry_backoff "exponential" doubles it: '
                                                 "set it above 0 (the first wait, in seconds)")
    return settings


def _modules(
    check: _Checker, entries: Any, root: Path, default_timeout: float,
    retry_defaults: RetryDefaults,
) -> tuple[ModuleSpec, ...]:
    if not isinstance(entries, list):
        check.fail("modules", "must be a list of paths or objects with a path")
    root = root.resolve()  # once: every module's path is checked against it
    specs = tuple(
        _module(check, f"modules[{i}]", entry, root, default_timeout, retry_defaults)
        for i, entry in enumerate(entries)
    )
    _check_unique(check, specs)
    return specs


def _module(
    check: _Checker, key: str, entry: Any, root: Path, default_timeout: float,
    retry_defaults: RetryDefaults,
) -> ModuleSpec:
    if isinstance(entry, str):
        entry = {"path": entry}
    if not isinstance(entry, dict):
        check.fail(key, "must be a path or an object with a path")
    check.known(entry, MODULE_KEYS, key)
    if "path" not in entry:
        check.fail(f"{key}.path", "is required")
    rel = check.path(entry, "path", "", where=key)
    timeout = check.positive(entry, "timeout_seconds", default_timeout, where=key)
    spec = module_spec(
        module_path(check.display, f"{key}.path", root, rel),
        root,
        critical=check.boolean(entry, "critical", True, where=key),
        timeout_seconds=timeout,
        **retry_settings(check, entry, key, retry_defaults),
        enabled=check.boolean(entry, "enabled", True, where=key),
        github_token=check.boolean(entry, "github_token", False, where=key),
        unbuffered=check.boolean(entry, "unbuffered", True, where=key),
        display=check.display,
        key=f"{key}.path",
    )
    if entry.get("on_failure") is None:
        return spec
    recovery = check.path(entry, "on_failure", "", where=key)
    return spec._replace(on_failure=recovery_spec(check.display, f"{key}.on_failure", root,
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
    """The module's absolute path; it must exist and stay inside `root` (resolved)."""
    path = (root / rel).resolve()
    if not path.is_relative_to(root):
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
    """`.py` runs with our interpreter, `.sh` with bash, other executables directly."""
    if path.suffix == ".py":
        return (sys.executable, str(path))
    if path.suffix == ".sh":
        return ("bash", str(path))
    if os.stat(path).st_mode & stat.S_IXUSR:
        _check_runnable(path, display, key)
        return (str(path),)
    raise FatalError(
        f"{display}: {key}: {path.name!r} is neither .py, .sh nor executable (chmod +x it)"
    )


# What the kernel can execute: a script with its interpreter line, or a program.
EXECUTABLE_MAGIC = (b"#!", b"\x7fELF", b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe")


def _check_runnable(path: Path, display: str, key: str) -> None:
    """Found now, not as `Exec format error` when the run reaches the module at 06:00."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise FatalError(f"{display}: {key}: cannot read {path.name!r}: {exc.strerror}") from None
    if not head.startswith(EXECUTABLE_MAGIC):
        raise FatalError(f"{display}: {key}: {path.name!r} has a run bit but no #! line: add "
                         "one (e.g. #!/usr/bin/env bash), or name it .sh or .py")


def _check_unique(check: _Checker, specs: tuple[ModuleSpec, ...]) -> None:
    seen: dict[str, int] = {}
    for i, spec in enumerate(specs):
        if spec.name in seen:
            check.fail(f"modules[{i}]", f"module {spec.name!r} is listed twice")
        seen[spec.name] = i


def _git(check: _Checker, raw: Any) -> GitSettings:
    if not isinstance(raw, dict):
        check.fail("git", "must be an object")
    check.known(raw, GIT_KEYS, "git")
    push = check.string(raw, "push", "auto", where="git")
    if push not in ("auto", "always", "never"):
        check.fail("git.push", f'must be "auto", "always" or "never" (got {push!r})')
    message = check.string(raw, "commit_message", DEFAULT_COMMIT_MESSAGE, where="git")
    check.template("git.commit_message", message)
    return GitSettings(
        push=push,  # type: ignore[arg-type]  # checked against the Literal just above
        remote=check.string(raw, "remote", "origin", nonempty=True, where="git"),
        branch=check.optional_string(raw, "branch", where="git"),
        paths=tuple(check.outside_git(f"git.paths[{i}]", name) for i, name in
                    enumerate(check.string_list(raw, "paths", where="git"))),
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


NOTIFY_KEYS = frozenset({"on", "webhook", "headers", "email"})
EMAIL_KEYS = frozenset({"to", "from", "host", "port", "starttls", "ssl", "username_env",
                        "password_env", "attach_log"})


def _notify(check: _Checker, raw: Any) -> tuple[Channel, ...]:
    if not isinstance(raw, list):
        check.fail("notify", "must be a list of channels (objects with `webhook` or `email`)")
    return tuple(_channel(check, f"notify[{i}]", entry) for i, entry in enumerate(raw))


def _channel(check: _Checker, key: str, entry: Any) -> Channel:
    if not isinstance(entry, dict):
        check.fail(key, "must be an object with `webhook` or `email`")
    check.known(entry, NOTIFY_KEYS, key)
    on = tuple(check.string_list(entry, "on", where=key, default=["failed", "interrupted"]))
    for status in on:
        if status not in RUN_STATUSES:
            check.fail(f"{key}.on", f"{status!r} is not a run status "
                                    f"({', '.join(RUN_STATUSES)})")
    if ("webhook" in entry) == ("email" in entry):
        check.fail(key, "needs exactly one of `webhook` (a URL) and `email` (an object)")
    if "email" in entry:
        if "headers" in entry:
            check.fail(f"{key}.headers", "goes with `webhook`, not `email`")
        return Channel(on=on, email=_email(check, f"{key}.email", entry["email"]))
    url = check.string(entry, "webhook", "", nonempty=True, where=key)
    if not url.startswith(("http://", "https://", "${")):
        check.fail(f"{key}.webhook", "must be an http:// or https:// URL")
    headers = entry.get("headers", {})
    if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        check.fail(f"{key}.headers", "must be an object of strings")
    return Channel(on=on, webhook=Webhook(url, tuple(headers.items())))


def _email(check: _Checker, key: str, raw: Any) -> Email:
    if not isinstance(raw, dict):
        check.fail(key, "must be an object with `to`, `from` and `host`")
    check.known(raw, EMAIL_KEYS, key)
    to = raw.get("to")
    to = [to] if isinstance(to, str) else to
    if not isinstance(to, list) or not to or not all(isinstance(a, str) and "@" in a for a in to):
        check.fail(f"{key}.to", "must be an address or a list of addresses")
    for required in ("from", "host"):
        if required not in raw:
            check.fail(f"{key}.{required}", "is required")
    port = raw.get("port", 587)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        check.fail(f"{key}.port", f"must be a port number (got {_show(port)})")
    email = Email(
        to=tuple(to), sender=check.string(raw, "from", "", nonempty=True, where=key),
        host=check.string(raw, "host", "", nonempty=True, where=key), port=port,
        starttls=check.boolean(raw, "starttls", False, where=key),
        ssl=check.boolean(raw, "ssl", False, where=key),
        username_env=check.optional_string(raw, "username_env", where=key),
        password_env=check.optional_string(raw, "password_env", where=key),
        attach_log=check.boolean(raw, "attach_log", False, where=key),
    )
    if email.starttls and email.ssl:
        check.fail(f"{key}.ssl", "choose `starttls` or `ssl`, not both")
    return email


def _schedule(check: _Checker, raw: dict[str, Any]) -> str | None:
    """A cron line of five fields (checked in full when `status` reads it)."""
    value = check.optional_string(raw, "schedule")
    if value is not None and len(value.split()) != 5:
        check.fail("schedule", f"must be a cron line of five fields, in UTC (got {value!r})")
    return value


def check_environment(config: Config, env: Mapping[str, str]) -> None:
    """Variables the config names must be set now, not found missing at 06:00."""
    for i, channel in enumerate(config.notify):
        key = f"notify[{i}]"
        texts = []
        if channel.webhook:
            texts = [channel.webhook.url, *(v for _, v in channel.webhook.headers)]
        for name in (m.group(1) for text in texts for m in PLACEHOLDER.finditer(text)):
            if not env.get(name):
                raise FatalError(f"{config.display}: {key}: ${{{name}}} is used but the "
                                 f"variable {name} is not set")
        if channel.email:
            for field_name in ("username_env", "password_env"):
                name = getattr(channel.email, field_name)
                if name and not env.get(name):
                    raise FatalError(f"{config.display}: {key}.email.{field_name}: the "
                                     f"variable {name} is not set")


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

    def string_list(self, obj: dict[str, Any], key: str, *, where: str = "",
                    default: list[str] | None = None) -> list[str]:
        name, value = self._get(obj, key, [] if default is None else default, where)
        if not isinstance(value, list) or not all(
                isinstance(v, str) and v and "\0" not in v for v in value):
            self.fail(name, f"must be a list of non-empty strings (got {_show(value)})")
        return value

    def known(self, obj: dict[str, Any], keys: frozenset[str], where: str) -> None:
        unknown = sorted(set(obj) - keys)
        if unknown:
            close = _close_match(unknown[0], keys)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(keys))}"
            self.fail(f"{where}.{unknown[0]}", f"unknown key ({hint})")

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
        if not 0 < value <= MAX_SECONDS:
            self.fail(name, f"must be a number of seconds above 0 and at most {MAX_SECONDS:.0f} "
                            f"(7 days) (got {_show(value)})")
        return float(value)

    def non_negative(
        self, obj: dict[str, Any], key: str, default: float, *, where: str = ""
    ) -> float:
        name, value = self._number(obj, key, default, where)
        if not 0 <= value <= MAX_SECONDS:
            self.fail(name, f"must be a number of seconds from 0 to {MAX_SECONDS:.0f} (7 days) "
                            f"(got {_show(value)})")
        return float(value)

    def count(self, obj: dict[str, Any], key: str, default: int, *, where: str = "") -> int:
        name, value = self._get(obj, key, default, where)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RETRIES:
            self.fail(name, f"must be a whole number from 0 to {MAX_RETRIES} (got {_show(value)})")
        return value

    def exit_codes(self, obj: dict[str, Any], key: str, default: tuple[int, ...] | None, *,
                   where: str = "") -> tuple[int, ...] | None:
        """A list of exit codes a failure is retried on: 1 to 255, but not the skip."""
        name, value = self._get(obj, key, default, where)
        if value is None or isinstance(value, tuple):
            return value
        if not isinstance(value, list) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in value):
            self.fail(name, f"must be a list of exit codes, e.g. [75] (got {_show(value)})")
        for code in value:
            if code == MODULE_SKIP:
                self.fail(name, f"{code} means skipped, which is never retried")
            if not MODULE_OK < code <= 255:
                self.fail(name, f"{code} is not the exit code of a failure (1 to 255)")
        return tuple(value)

    def backoff(self, obj: dict[str, Any], key: str, default: retry.Backoff, *,
                where: str = "") -> retry.Backoff:
        value = self.string(obj, key, default, where=where)
        if value not in retry.BACKOFFS:
            self.fail(f"{where}.{key}" if where else key,
                      f'must be "fixed" or "exponential" (got {value!r})')
        return value  # type: ignore[return-value]  # checked against the Literal just above

    def minutes(self, obj: dict[str, Any], key: str, default: float) -> float:
        name, value = self._number(obj, key, default, "")
        if not 0 < value <= MAX_MINUTES:
            self.fail(name, f"must be a number of minutes above 0 and at most {MAX_MINUTES:.0f} "
                            f"(10 years) (got {_show(value)})")
        return float(value)

    def optional_minutes(self, obj: dict[str, Any], key: str) -> float | None:
        return None if obj.get(key) is None else self.minutes(obj, key, 0.0)

    def path(self, obj: dict[str, Any], key: str, default: str, *, where: str = "") -> str:
        value = self.string(obj, key, default, nonempty=True, where=where)
        if "\0" in value:
            self.fail(f"{where}.{key}" if where else key, "holds a NUL character")
        return value

    def outside_git(self, key: str, value: str) -> str:
        """A path in `.git` is git's own: logs there are never committed, and `git add`
        of it adds nothing (`.GIT` too: git refuses the name in any case)."""
        if any(part.casefold() == ".git" for part in re.split(r"[/\\]", value)):
            self.fail(key, f"{value!r} is inside .git, which is git's own folder: choose "
                           "another path")
        return value

    def zone(self, key: str, name: str) -> tzinfo:
        try:
            return zone(name)
        except ValueError:
            self.fail(key, f"unknown IANA time zone {name!r} (e.g. \"UTC\", \"Europe/Paris\")")

    def timestamp(self, key: str, value: str) -> None:
        try:
            parsed = parse_timestamp(value)
            parsed.astimezone(timezone.utc)  # 9999-12-31T23:59-14:00 is past the last instant
        except (ValueError, OverflowError):
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            self.fail(key, f"must be an ISO 8601 time with offset (got {value!r})")

    def template(self, key: str, value: str) -> None:
        """Only plain `{run_id}` and `{status}`: a format spec such as `{status:>99999999}`
        would be run at the end of every run."""
        try:
            fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(value)
                      if name is not None]
        except ValueError as exc:
            self.fail(key, f"not a valid template ({exc})")
        for name, spec, conv in fields:
            if name not in ("run_id", "status") or spec or conv:
                shown = "{" + name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "")
                shown += "}"
                self.fail(key, f"only {{run_id}} and {{status}} may be used ({shown} is not)")


def _show(value: Any) -> str:
    try:
        return json.dumps(value, default=str)[:60]
    except (ValueError, RecursionError):
        return type(value).__name__


def _close_match(key: str, known: Collection[str]) -> list[str]:
    """difflib's nearest known key at its default cutoff; imported only when a key is unknown."""
    import difflib

    return difflib.get_close_matches(key, known, n=1)


def zone(name: str) -> tzinfo:
    """An IANA zone; "UTC" needs no zone database (nor the import of zoneinfo)."""
    if name == "UTC":
        return timezone.utc
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(name) from None


def parse_timestamp(value: str) -> datetime:
    """ISO 8601; accepts a trailing "Z", which Python 3.10's fromisoformat does not."""
    return datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)


def set_key(config: Config, key: str, value: str) -> None:
    """Set one top-level key in the file as it is now, atomically.

    The file is read again: a module may have changed its own settings in it
    during the run.
    """
    try:
        # Bytes, decoded here: a CRLF file keeps its line endings.
        text = config.path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FatalError(f"{config.display}: cannot read it again: {exc}") from None
    write_atomic(config.path, with_key(text, config.display, config.kind, key, value))


def with_key(text: str, display: str, kind: ConfigKind, key: str, value: str) -> str:
    """`text` with one top-level key set to a string; FatalError if it is no config.

    JSON: key order, unknown keys and numbers stay as written; two-space indent.
    YAML: one line changes (or is appended); everything else stays byte for byte.
    """
    if kind == "yaml":
        from gitcron import yamlconf

        return yamlconf.set_top_level(text, display, key, value)
    parse(text, display, "json")  # checked as the loader checks it
    data = json.loads(text, parse_float=_Number, parse_int=_Number, parse_constant=_Number)
    data[key] = value
    return dump_json(data) + "\n"


class _Number(str):
    """A JSON number as it was written: `1.0000000000000000001` and `1e999` stay
    themselves, where a float would round one and make the other Infinity."""


def dump_json(value: Any, indent: str = "") -> str:
    """json.dumps(indent=2, ensure_ascii=False), but numbers are written as read."""
    inner = indent + "  "
    if isinstance(value, _Number):
        return str(value)
    if isinstance(value, dict) and value:
        items = (f"{inner}{json.dumps(k, ensure_ascii=False)}: {dump_json(v, inner)}"
                 for k, v in value.items())
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    if isinstance(value, list) and value:
        return "[\n" + ",\n".join(inner + dump_json(v, inner) for v in value) + f"\n{indent}]"
    return json.dumps(value, ensure_ascii=False)


def load_env(root: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` over the `.env` file of `root`, if there is one: a variable
    already set is never overridden. python-dotenv is imported only when needed."""
    path = root / ".env"
    if not path.exists():
        return dict(environ)
    if not path.is_file():
        raise FatalError(f"{path}: not a file (a folder?): remove it, or make it a .env file")
    text = _env_text(path)
    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            raise FatalError(f"{path}: line {binding.original.line}: not a NAME=value line "
                             "(quote a value that holds spaces, # or quotes)")
    values = {k: v for k, v in dotenv_values(stream=io.StringIO(text)).items() if v is not None}
    for name, value in values.items():
        _check_variable(path, name, value)
    return {**values, **environ}


def _env_text(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_ENV_BYTES + 1)
    except OSError as exc:
        raise FatalError(f"{path}: cannot read it: {exc.strerror}") from None
    if len(data) > MAX_ENV_BYTES:
        raise FatalError(f"{path}: larger than {MAX_ENV_BYTES >> 20} MiB: more than the "
                         "environment of a module can hold")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FatalError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def _check_variable(path: Path, name: str, value: str) -> None:
    if "\0" in name or "\0" in value or "=" in name:
        raise FatalError(f"{path}: {name!r}: a NUL character or '=' where no environment "
                         "variable can hold one")
    size = len(name.encode()) + 1 + len(value.encode())
    if size > MAX_VARIABLE_BYTES:
        raise FatalError(f"{path}: {name}: {size} bytes; one environment variable can hold "
                         f"at most {MAX_VARIABLE_BYTES} (NAME=value, Linux's MAX_ARG_STRLEN)")


def write_atomic(path: Path, text: str) -> None:
    """Temporary file in the same folder, flush, fsync, rename (pipx's metadata).

    A crash at any instant leaves either the old file or the new one. A symlink
    is written through to its target: the link stays a link.
    """
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    mode = _mode_of(path)
    tmp = path.parent / f".{path.name}.{os.urandom(6).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _mode_of(path: Path) -> int:
    """Keep the file's mode: the temporary file is 0600, which would hide it from others."""
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
