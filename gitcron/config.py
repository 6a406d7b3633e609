"""Load, validate and atomically save config.json; a typed view of it.

Every key is declared once, as a field of the class that holds it (`setting`:
kind, default, one line of description); `gitcron.schema` reads the file
against those fields and writes the reference in `docs/config.md` from them.
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
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from typing import Any, Literal, NamedTuple

from gitcron import retry, runid, schema
from gitcron.codes import MODULE_OK, MODULE_SKIP, FatalError
from gitcron.schema import Invalid, Kind, Reader, setting, show, simple

PushMode = Literal["auto", "always", "never"]
CommitMode = Literal["always", "changes"]
ConfigKind = Literal["json", "yaml"]

DEFAULT_TIMEOUT_SECONDS = 3600.0
DEFAULT_LOG_DIR = "data and logs"
# GitHub refuses a file over 100 MB, and only after the upload; 95 leaves a margin.
DEFAULT_MAX_FILE_MB = 95.0
MAX_FILE_MB = 1_000_000.0
DEFAULT_COMMIT_MESSAGE = "pipeline: {status} run {run_id} [skip ci]"
DEFAULT_RETRY_MAX_DELAY_SECONDS = 3600.0
# A module file name starts with a number, then ".", "_" or "-" (docs/config.md, `modules`).
NUMBERED = re.compile(r"^(\d+)[._-](.+)$")
CONFIG_NAMES = ("config.json", "config.yaml", "config.yml")
MAX_SECONDS = 7 * 24 * 3600.0  # a week: far below the event loop's own limit (~24.8 days)
MAX_RETRIES = 100
MAX_MINUTES = 10 * 366 * 24 * 60.0  # a window or a grace of ten years: more is a typo
RUN_STATUSES = ("success", "partial", "failed", "interrupted")
# A channel hears of every run that needs a person, and once more when it is over.
FIXED = "fixed"  # in `on`: the first success after runs that needed attention
DEFAULT_ON = ("failed", "partial", "interrupted", FIXED)
MAX_CONFIG_BYTES = 1 << 20  # a config is a page of settings; more is a mistake (or /dev/zero)
MAX_DEPTH = 64  # a config nested deeper is not one, and would strain every walk of it
MAX_ENV_BYTES = 1 << 20  # Linux passes at most ARG_MAX (2 MiB, often less) to a program
# Linux's MAX_ARG_STRLEN (128 KiB) less the NUL: execve() refuses a longer NAME=value (E2BIG).
MAX_VARIABLE_BYTES = 128 * 1024 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")  # json.loads lets "\\ud800" through; UTF-8 cannot


# --- Kinds of values ----------------------------------------------------------------------


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"must be true or false (got {show(value)})")
    return value


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid(f"must be a string (got {show(value)})")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"must be a non-empty string (got {show(value)})")
    return value


def _path(value: Any) -> str:
    if "\0" in _text(value):
        raise Invalid("holds a NUL character")
    return value


def _outside_git(value: str) -> str:
    """A path in `.git` is git's own: logs there are never committed, and `git add`
    of it adds nothing (`.GIT` too: git refuses the name in any case)."""
    if any(part.casefold() == ".git" for part in re.split(r"[/\\]", value)):
        raise Invalid(f"{value!r} is inside .git, which is git's own folder: choose another path")
    return value


def _git_paths(value: Any, reader: Reader, key: str) -> tuple[str, ...]:
    paths = _strings(value)
    for i, path in enumerate(paths):
        reader.value(OUTSIDE_GIT, path, f"{key}[{i}]")
    return paths


def _optional_string(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise Invalid(f"must be a string or null (got {show(value)})")
    return value


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(
            isinstance(v, str) and v and "\0" not in v for v in value):
        raise Invalid(f"must be a list of non-empty strings (got {show(value)})")
    return tuple(value)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise Invalid(f"must be a number (got {show(value)})")
    return value


def seconds_up_to_a_week(*, zero: bool) -> Kind:
    """A duration in seconds, at most 7 days; above 0, or from 0 when `zero`."""
    text = (f"seconds from 0 to {MAX_SECONDS:.0f} (7 days)" if zero
            else f"seconds above 0 and at most {MAX_SECONDS:.0f} (7 days)")

    def convert(value: Any) -> float:
        number = _number(value)
        low_ok = number >= 0 if zero else number > 0
        if not low_ok or number > MAX_SECONDS:
            raise Invalid(f"must be a number of {text} (got {show(value)})")
        return float(number)
    return simple(text, convert)


def _minutes(value: Any) -> float:
    number = _number(value)
    if not 0 < number <= MAX_MINUTES:
        raise Invalid(f"must be a number of {MINUTES.text} (got {show(value)})")
    return float(number)


def _megabytes(value: Any) -> float:
    number = _number(value)
    if not 0 < number <= MAX_FILE_MB:
        raise Invalid(f"must be a number of {MEGABYTES.text} (got {show(value)})")
    return float(number)


def _catch_up_max(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000:
        raise Invalid(f"must be a whole number from 1 to 10000 (got {show(value)})")
    return value


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RETRIES:
        raise Invalid(f"must be {COUNT.text} (got {show(value)})")
    return value


def one_of(*choices: str) -> Kind:
    quoted = [f'"{choice}"' for choice in choices]
    text = f"{', '.join(quoted[:-1])} or {quoted[-1]}"

    def convert(value: Any) -> str:
        if value not in choices:
            raise Invalid(f"must be {text} (got {show(value)})")
        return value
    return simple(text, convert)


def _template(value: Any) -> str:
    """Only plain `{run_id}` and `{status}`: a format spec such as `{status:>99999999}`
    would be run at the end of every run."""
    text = _string(value)
    try:
        fields = [(name, spec, conv) for _, name, spec, conv
                  in string.Formatter().parse(text) if name is not None]
    except ValueError as exc:
        raise Invalid(f"not a valid template ({exc})") from None
    for name, spec, conv in fields:
        if name not in ("run_id", "status") or spec or conv:
            shown = "{" + name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
            raise Invalid(f"only {{run_id}} and {{status}} may be used ({shown} is not)")
    return value


def _timestamp(value: Any) -> str | None:
    if _optional_string(value) is None:
        return None
    try:
        parsed = parse_timestamp(value)
        parsed.astimezone(timezone.utc)  # 9999-12-31T23:59-14:00 is past the last instant
    except (ValueError, OverflowError):
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise Invalid(f"must be an ISO 8601 time with offset (got {value!r})")
    return value


def _zone_name(value: Any) -> str:
    name = _string(value)
    try:
        zone(name)
    except ValueError:
        raise Invalid(f"unknown IANA time zone {value!r} "
                      "(e.g. \"UTC\", \"Europe/Paris\")") from None
    return value


def _cron(value: Any) -> str | None:
    """A cron line of five fields (checked in full when `status` reads it)."""
    if _optional_string(value) is not None and len(value.split()) != 5:
        raise Invalid(f"must be a cron line of five fields, in UTC (got {value!r})")
    return value


def _port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise Invalid(f"must be a port number (got {show(value)})")
    return value


def _addresses(value: Any) -> tuple[str, ...]:
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, list) or not value or not all(
            isinstance(a, str) and "@" in a for a in value):
        raise Invalid("must be an address or a list of addresses")
    return tuple(value)


def _url(value: Any) -> str:
    if not _text(value).startswith(("http://", "https://", "${")):
        raise Invalid("must be an http:// or https:// URL")
    return value


def _headers(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise Invalid("must be an object of strings")
    return tuple(value.items())


def _airflow(value: Any) -> tuple[tuple[str, str], ...]:
    """`{"env": {"API_TOKEN": "{{ conn.api.password }}"}}`: module variables whose
    values Airflow renders (docs/airflow.md); the pairs of `env`."""
    if not isinstance(value, dict) or set(value) - {"env"}:
        raise Invalid(f"must be an object with one key, env (got {show(value)})")
    env = value.get("env", {})
    if not isinstance(env, dict) or not all(
            isinstance(k, str) and k and "=" not in k and "\0" not in k and isinstance(v, str)
            for k, v in env.items()):
        raise Invalid("env: must map variable names to strings, e.g. "
                      '{"API_TOKEN": "{{ conn.api.password }}"}')
    return tuple(env.items())


def _on(value: Any) -> tuple[str, ...]:
    """A channel's `on`: run statuses, and `fixed` (back to normal)."""
    for status in _strings(value):
        if status not in (*RUN_STATUSES, FIXED):
            raise Invalid(f"{status!r} is not a run status ({', '.join(RUN_STATUSES)}) "
                          f"nor {FIXED!r}")
    return tuple(value)


def _failures(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RETRIES:
        raise Invalid(f"must be {FAILURES.text} (got {show(value)})")
    return value


def _exit_codes(value: Any) -> tuple[int, ...] | None:
    """Exit codes a failure is retried on: 1 to 255, but not the skip."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise Invalid(f"must be a list of exit codes, e.g. [75] (got {show(value)})")
    for code in value:
        if code == MODULE_SKIP:
            raise Invalid(f"{code} means skipped, which is never retried")
        if not MODULE_OK < code <= 255:
            raise Invalid(f"{code} is not the exit code of a failure (1 to 255)")
    return tuple(value)


def _list(problem: str) -> Any:
    def convert(value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise Invalid(problem)
        return value
    return convert


BOOL = simple("true or false", _bool)
TEXT = simple("a non-empty string", _text)
PATH = simple("a path (relative to the config's folder)", _path)
OUTSIDE_GIT = simple("a path outside `.git`", _outside_git)
LOG_DIR = simple("a path (relative to the config's folder), outside `.git`",
                 lambda value: _outside_git(_path(value)))
GIT_PATHS = Kind("a list of paths, outside `.git`", _git_paths)
OPTIONAL_PATH = simple("a path (relative to the config's folder) or null",
                       lambda value: None if value is None else _path(value))
OPTIONAL_STRING = simple("a string or null", _optional_string)
STRINGS = simple("a list of non-empty strings", _strings)
SECONDS = seconds_up_to_a_week(zero=False)
SECONDS_OR_ZERO = seconds_up_to_a_week(zero=True)
MEGABYTES = simple(f"megabytes above 0 and at most {MAX_FILE_MB:.0f}", _megabytes)
COUNT = simple(f"a whole number from 0 to {MAX_RETRIES}", _count)
MINUTES = simple(f"minutes above 0 and at most {MAX_MINUTES:.0f} (10 years)", _minutes)
OPTIONAL_MINUTES = simple(f"{MINUTES.text}, or null",
                          lambda value: None if value is None else _minutes(value))
TEMPLATE = simple("a message with `{run_id}` and `{status}`", _template)
TIMESTAMP = simple("an ISO 8601 time with offset, or null", _timestamp)
ZONE = simple("an IANA time zone", _zone_name)
CRON = simple("a cron line of five fields (UTC), or null", _cron)
AIRFLOW = simple('an object: `{"env": {NAME: template}}`', _airflow)
PORT = simple("a port number", _port)
ADDRESSES = simple("an address or a list of addresses", _addresses)
URL = simple("an http:// or https:// URL; `${NAME}` is the variable NAME", _url)
HEADERS = simple("an object of strings; `${NAME}` is the variable NAME", _headers)
ON = simple("a list of run statuses, and `fixed`", _on)
FAILURES = simple(f"a whole number from 1 to {MAX_RETRIES}", _failures)
EXIT_CODES = simple("a list of exit codes (1 to 255, not 10), or null", _exit_codes)
BACKOFF = one_of(*retry.BACKOFFS)
LAYOUT = one_of(*runid.LAYOUTS)
CATCH_UP = one_of("none", "latest", "all")
CATCH_UP_COUNT = simple("a whole number from 1 to 10000", lambda value: _catch_up_max(value))
MODULES = simple("a list of paths or objects (see below)",
                 _list("must be a list of paths or objects with a path"))


# --- The keys, and the typed view they make -----------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ModuleSpec:
    """One module of the pipeline, as configured (or discovered)."""

    path: Path  # absolute
    name: str  # file name without its extension: "1.file_retrieval"
    command: tuple[str, ...]
    rel: str = setting(PATH, doc="the module file", key="path")  # with forward slashes
    critical: bool = setting(BOOL, True, "a failure stops the run; the rest are not_run")
    timeout_seconds: float = setting(SECONDS, DEFAULT_TIMEOUT_SECONDS,
                                     "stopped, with its children, after this long",
                                     inherit="default_timeout_seconds")
    retries: int = setting(COUNT, 0, "runs again after a failure, up to this many times")
    retry_delay_seconds: float = setting(SECONDS_OR_ZERO, 0.0, "the wait before a retry")
    enabled: bool = setting(BOOL, True, "false: listed, but not run")
    # The recovery script, run once after the module failed for good; a spec of its
    # own named "<module>.on_failure", with the module's timeout and no retries.
    on_failure: ModuleSpec | None = setting(
        OPTIONAL_PATH, None, "a recovery script, run once after the module failed for good")
    github_token: bool = setting(BOOL, False, "keep GITHUB_TOKEN and GH_TOKEN in its environment")
    unbuffered: bool = setting(BOOL, True, "PYTHONUNBUFFERED=1 unless already set")
    retry_on_exit_codes: tuple[int, ...] | None = setting(
        EXIT_CODES, None, "retry only failures with these exit codes (null: every failure)",
        inherit="retry_on_exit_codes")
    retry_backoff: retry.Backoff = setting(
        BACKOFF, "fixed", "`exponential`: each wait doubles the one before",
        inherit="retry_backoff")
    retry_max_delay_seconds: float = setting(
        SECONDS, DEFAULT_RETRY_MAX_DELAY_SECONDS, "the longest wait before a retry",
        inherit="retry_max_delay_seconds")

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


@dataclass(frozen=True, kw_only=True)
class GitSettings:
    push: PushMode = setting(
        one_of("auto", "always", "never"), "auto",
        "commit and push back; `auto`: under GitHub Actions or with a GITHUB_TOKEN")
    remote: str = setting(TEXT, "origin", "the remote to push to")
    branch: str | None = setting(OPTIONAL_STRING, None,
                                 "the branch to push to (null: the current one)")
    paths: tuple[str, ...] = setting(GIT_PATHS, (), "more paths committed with each run")
    commit_message: str = setting(TEMPLATE, DEFAULT_COMMIT_MESSAGE, "the commit's message")
    author_name: str | None = setting(OPTIONAL_STRING, None, "the commit's author (null: git's)")
    author_email: str | None = setting(OPTIONAL_STRING, None,
                                       "the commit's author e-mail (null: git's)")
    push_retries: int = setting(COUNT, 3, "rebase and push again this many times")
    commit: CommitMode = setting(
        one_of("always", "changes"), "always",
        "`changes`: no commit when every module skipped and `paths` did not change")
    max_file_mb: float = setting(
        MEGABYTES, DEFAULT_MAX_FILE_MB,
        "a file this large or larger stops commit-back (exit 3) before any push")

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


@dataclass(frozen=True, kw_only=True)
class Email:
    to: tuple[str, ...] = setting(ADDRESSES, doc="the recipients")
    sender: str = setting(TEXT, doc="the sender's address", key="from")
    host: str = setting(TEXT, doc="the SMTP server")
    port: int = setting(PORT, 587, "the SMTP server's port")
    starttls: bool = setting(BOOL, False, "upgrade the connection with STARTTLS")
    ssl: bool = setting(BOOL, False, "implicit TLS (port 465); not with `starttls`")
    username_env: str | None = setting(OPTIONAL_STRING, None,
                                       "the variable that holds the SMTP user name")
    password_env: str | None = setting(OPTIONAL_STRING, None,
                                       "the variable that holds the SMTP password")
    attach_log: bool = setting(BOOL, False, "attach the run's log (at most 5 MB, its tail)")


def _email(value: Any, reader: Reader, key: str) -> Email:
    if not isinstance(value, dict):
        raise Invalid("must be an object with `to`, `from` and `host`")
    email = Email(**reader.read(Email, value, key))
    if email.starttls and email.ssl:
        reader.fail(f"{key}.ssl", "choose `starttls` or `ssl`, not both")
    return email


EMAIL = Kind("an object (see `notify` e-mail)", _email)


@dataclass(frozen=True, kw_only=True)
class Channel:
    """One `notify` entry: where to send, for which run statuses."""

    on: tuple[str, ...] = setting(ON, DEFAULT_ON, "the run statuses that send it; `fixed`: "
                                  "the first success after runs that needed attention")
    webhook: Webhook | None = setting(URL, None, "POST the run here as JSON "
                                      "(an entry has a `webhook` or an `email`)")
    headers: tuple[tuple[str, str], ...] = setting(HEADERS, (), "the webhook's HTTP headers",
                                                   shown="`{}`")
    email: Email | None = setting(EMAIL, None, "send the review report by e-mail")
    after_failures: int = setting(FAILURES, 1, "a `failed` run is sent once this many whole "
                                  "runs failed in a row")


def _channel(value: Any, reader: Reader, key: str) -> Channel:
    if not isinstance(value, dict):
        raise Invalid("must be an object with `webhook` or `email`")
    values = reader.read(Channel, value, key)
    if ("webhook" in value) == ("email" in value):
        reader.fail(key, "needs exactly one of `webhook` (a URL) and `email` (an object)")
    if "email" in value and "headers" in value:
        reader.fail(f"{key}.headers", "goes with `webhook`, not `email`")
    if values["webhook"] is not None:
        values["webhook"] = Webhook(values["webhook"], values["headers"])
    return Channel(**values)


def _notify(value: Any, reader: Reader, key: str) -> tuple[Channel, ...]:
    if not isinstance(value, list):
        raise Invalid("must be a list of channels (objects with `webhook` or `email`)")
    return tuple(_channel(entry, reader, f"{key}[{i}]") for i, entry in enumerate(value))


def _git(value: Any, reader: Reader, key: str) -> GitSettings:
    if not isinstance(value, dict):
        raise Invalid("must be an object")
    return GitSettings(**reader.read(GitSettings, value, key))


MonitorKind = Literal["healthchecks", "cronitor", "plain"]
MONITOR_KINDS = ("healthchecks", "cronitor", "plain")


@dataclass(frozen=True, kw_only=True)
class Monitor:
    """A dead-man's switch pinged at the start and the end of a run."""

    url: str = setting(URL, doc="where to ping (`${NAME}` is the variable NAME: keep it secret)")
    kind: MonitorKind = setting(one_of(*MONITOR_KINDS), "plain",
                                "which pings: see docs/when-a-run-fails.md")


def _monitor(value: Any, reader: Reader, key: str) -> Monitor | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Invalid('must be an object: {"url": ..., "kind": "healthchecks"}')
    return Monitor(**reader.read(Monitor, value, key))


PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand(text: str, env: Mapping[str, str]) -> str:
    """`${NAME}` -> the variable NAME (checked to be set when the config is loaded)."""
    return PLACEHOLDER.sub(lambda match: env.get(match.group(1), ""), text)


@dataclass(frozen=True, kw_only=True)
class Config:
    path: Path  # absolute path of the config file
    display: str  # the path as the user gave it, for messages
    raw: dict[str, Any]  # the file's content, key order kept
    tz: tzinfo  # the zone named by `timezone`
    kind: ConfigKind = "json"
    text: str = ""  # the file as it was read
    # None: discover them in modules/.
    modules: tuple[ModuleSpec, ...] | None = setting(
        MODULES, None, "the run order", shown="every numbered file of `modules/`")
    log_dir: Path = setting(LOG_DIR, Path(DEFAULT_LOG_DIR), "logs, run records and data")
    timezone_name: str = setting(ZONE, "UTC", "the clock of log names, log lines and "
                                 "`last_run_date`", key="timezone")
    default_timeout_seconds: float = setting(SECONDS, DEFAULT_TIMEOUT_SECONDS,
                                             "a module's timeout unless its entry sets one")
    mask_env: tuple[str, ...] = setting(STRINGS, (), "variables whose values are masked")
    git: GitSettings = setting(Kind("an object (see `git`)", _git), GitSettings(),
                               "committing back", shown="see `git`")
    last_run_date: str | None = setting(TIMESTAMP, None,
                                        "the start of the last good run (state)")
    window_minutes: float | None = setting(
        OPTIONAL_MINUTES, None, "the window's length (null: since `last_run_date`)")
    notify: tuple[Channel, ...] = setting(
        Kind("a list of channels (see `notify`)", _notify), (), "where reports are sent")
    schedule: str | None = setting(CRON, None,
                                   "the schedule `status` checks (null: the workflow's)")
    schedule_grace_minutes: float = setting(
        MINUTES, 60.0, "`status` says `late` this long after a run was due")
    retry_on_exit_codes: tuple[int, ...] | None = setting(
        EXIT_CODES, None, "every module's `retry_on_exit_codes` unless it sets its own")
    retry_backoff: retry.Backoff = setting(
        BACKOFF, "fixed", "every module's `retry_backoff` unless it sets its own")
    retry_max_delay_seconds: float = setting(
        SECONDS, DEFAULT_RETRY_MAX_DELAY_SECONDS,
        "every module's `retry_max_delay_seconds` unless it sets its own")
    metrics_file: Path | None = setting(
        OPTIONAL_PATH, None, "the run as node_exporter textfile metrics, after each run")
    monitor: Monitor | None = setting(
        Kind("an object (see `monitor`)", _monitor), None,
        "pings to a dead-man's switch (healthchecks.io, Cronitor, a URL)")
    catch_up: Literal["none", "latest", "all"] = setting(
        CATCH_UP, "none", "with `schedule`: one run per missed interval (`all`), or the "
        "newest only (`latest`); see docs/history-status-init.md")
    catch_up_max: int = setting(CATCH_UP_COUNT, 24,
                                "`catch_up: all` runs at most this many (the newest)")
    log_layout: runid.Layout = setting(
        LAYOUT, "flat", "`daily`: a run's log, record and folder in `YYYY/MM/DD/` folders "
        "(see docs/commit-back.md, \"Running for years\")")
    name: str | None = setting(OPTIONAL_STRING, None, "the pipeline's name: its Airflow DAG id")
    airflow_env: tuple[tuple[str, str], ...] = setting(
        AIRFLOW, (), "on Airflow: module variables whose values Airflow renders "
        "(docs/airflow.md)", key="airflow", shown="none")

    def unchanged(self) -> bool:
        """The file still holds what was loaded: it needs no second check."""
        try:
            return bool(self.text) and self.path.read_text(encoding="utf-8") == self.text
        except (OSError, UnicodeDecodeError):
            return False

    @property
    def root(self) -> Path:
        return self.path.parent

    def module_defaults(self) -> dict[str, Any]:
        """What a module takes from the top level unless its entry sets its own."""
        return schema.inherited(ModuleSpec, vars(self))


def reference() -> str:
    """The key tables of `docs/config.md`."""
    return schema.reference([
        ("Top level", Config), ("An entry of `modules`", ModuleSpec), ("`git`", GitSettings),
        ("An entry of `notify`", Channel), ("`email` of a `notify` entry", Email),
        ("`monitor`", Monitor),
    ])


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
    reader = Reader(path_arg)
    values = reader.read(Config, raw, strict=False)
    if values["modules"] is not None:
        values["modules"] = _modules(reader, values["modules"], path.parent,
                                     schema.inherited(ModuleSpec, values))
    values["log_dir"] = path.parent / values["log_dir"]
    if values["metrics_file"] is not None:
        values["metrics_file"] = path.parent / values["metrics_file"]
    if values["catch_up"] != "none" and values["schedule"] is None:
        raise FatalError(f"{path_arg}: catch_up: needs `schedule` (the cron line, UTC, "
                         "whose missed intervals it runs)")
    return Config(path=path, display=path_arg, raw=raw, tz=zone(values["timezone_name"]),
                  kind=kind, text=text, **values)


def kind_of(path: Path | str) -> ConfigKind:
    """How a config file is read: by its extension, `.yaml`/`.yml` or else JSON."""
    return "yaml" if os.path.splitext(path)[1].lower() in (".yaml", ".yml") else "json"


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
            raise FatalError(f"{display}: {where or 'the top'}: the key {show(key)} is not "
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


def _modules(
    reader: Reader, entries: list[Any], root: Path, defaults: dict[str, Any]
) -> tuple[ModuleSpec, ...]:
    root = root.resolve()  # once: every module's path is checked against it
    specs = tuple(
        _module(reader, f"modules[{i}]", entry, root, defaults)
        for i, entry in enumerate(entries)
    )
    _check_unique(reader, specs)
    return specs


def _module(
    reader: Reader, key: str, entry: Any, root: Path, defaults: dict[str, Any]
) -> ModuleSpec:
    if isinstance(entry, str):
        entry = {"path": entry}
    if not isinstance(entry, dict):
        reader.fail(key, "must be a path or an object with a path")
    values = reader.read(ModuleSpec, entry, key, defaults=defaults)
    if values["retry_backoff"] == "exponential" and values["retries"] and not values[
            "retry_delay_seconds"]:
        reader.fail(f"{key}.retry_delay_seconds", 'retry_backoff "exponential" doubles it: '
                                                  "set it above 0 (the first wait, in seconds)")
    rel, recovery = values.pop("rel"), values.pop("on_failure")
    display = reader.display
    spec = module_spec(module_path(display, f"{key}.path", root, rel), root, display=display,
                       key=f"{key}.path", **values)
    if recovery is None:
        return spec
    return replace(spec, on_failure=recovery_spec(display, f"{key}.on_failure", root,
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


def _check_unique(reader: Reader, specs: tuple[ModuleSpec, ...]) -> None:
    seen: dict[str, int] = {}
    for i, spec in enumerate(specs):
        if spec.name in seen:
            reader.fail(f"modules[{i}]", f"module {spec.name!r} is listed twice")
        seen[spec.name] = i


def check_environment(config: Config, env: Mapping[str, str]) -> None:
    """Variables the config names must be set now, not found missing at 06:00."""
    if config.monitor is not None:
        for name in (m.group(1) for m in PLACEHOLDER.finditer(config.monitor.url)):
            if not env.get(name):
                raise FatalError(f"{config.display}: monitor.url: ${{{name}}} is used but the "
                                 f"variable {name} is not set")
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

    JSON: the value's text changes, or one member is appended after the last, in
    the file's own style; everything else stays byte for byte: indentation,
    spacing, escapes, numbers as written, key order.
    YAML: one line changes (or is appended); everything else stays byte for byte.
    """
    if kind == "yaml":
        from gitcron import yamlconf

        return yamlconf.set_top_level(text, display, key, value)
    parse(text, display, "json")  # checked as the loader checks it
    edited = _json_text_with_key(text, key, value)
    if edited is not None and _as_text(edited) == {**_as_text(text), key: value}:
        return edited
    # A layout the scanner does not follow (it follows any valid JSON object; this is
    # a safety net): the file is written anew, its values as they were written.
    data = json.loads(text, parse_float=_Number, parse_int=_Number, parse_constant=_Number)
    data[key] = value
    return dump_json(data) + "\n"


def _as_text(text: str) -> dict[str, Any]:
    """The JSON object with every number as written: two parses compare exactly."""
    return json.loads(text, parse_float=str, parse_int=str, parse_constant=str)


_BLANK = re.compile(r"[ \t\n\r]*")


class _Member(NamedTuple):
    key: str
    key_start: int  # the key's opening quote
    key_end: int  # after its closing quote
    start: int  # the value's first character
    end: int  # after its last


def _json_text_with_key(text: str, key: str, value: str) -> str | None:
    """The user's own text with one top-level string set: the value's text changes,
    or one member is added after the last (a line of its own, in the file's indent
    and line endings, when members are one a line; the last gains its comma);
    every other byte stays. None for a text it cannot follow."""
    found = _top_members(text)
    if not found:
        return None
    literal = json.dumps(value, ensure_ascii=False)
    for member in found:
        if member.key == key:
            return text[:member.start] + literal + text[member.end:]
    last = found[-1]
    name = json.dumps(key, ensure_ascii=False)
    colon = text[last.key_end:last.start]
    line_start = text.rfind("\n", 0, last.key_start) + 1
    indent = text[line_start:last.key_start]
    if line_start and not indent.strip():  # one member a line: a line of its own
        newline = "\r\n" if text[line_start - 2:line_start] == "\r\n" else "\n"
        comma = f",{newline}{indent}"
    else:  # on one line with the others: as they are separated
        comma = text[found[-2].end:last.key_start] if len(found) > 1 else ", "
    return f"{text[:last.end]}{comma}{name}{colon}{literal}{text[last.end:]}"


def _top_members(text: str) -> list[_Member] | None:
    """Where each member of the top-level object is in `text`; None if it is not one
    or is empty (an empty object has no layout to keep)."""
    decoder = json.JSONDecoder()
    i = _BLANK.match(text).end()
    if text[i:i + 1] != "{":
        return None
    i = _BLANK.match(text, i + 1).end()
    members: list[_Member] = []
    try:
        while text[i:i + 1] == '"':
            name, key_end = json.decoder.scanstring(text, i + 1)
            colon = _BLANK.match(text, key_end).end()
            if text[colon:colon + 1] != ":":
                return None
            start = _BLANK.match(text, colon + 1).end()
            end = decoder.raw_decode(text, start)[1]
            members.append(_Member(name, i, key_end, start, end))
            i = _BLANK.match(text, end).end()
            if text[i:i + 1] != ",":
                break
            i = _BLANK.match(text, i + 1).end()
    except (ValueError, RecursionError):
        return None
    return members if members and text[i:i + 1] == "}" else None


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


# write_atomic's temporary file: `.<name>.<12 hex digits>.tmp`, beside the file.
TEMPORARY_NAME = re.compile(r"\..+\.[0-9a-f]{12}\.tmp")


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
