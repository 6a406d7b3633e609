"""After the run: the review report, and sending it out (webhook, e-mail).

Nothing here changes a run: a channel that fails is one line in what `send`
returns, never an exception, and all channels together stay within a time
budget. Everything that leaves the machine is masked (the run's Masker, and a
channel's own secrets) and made inert (text.sanitise) first.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import shutil
import smtplib
import ssl
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from gitcron import records, runid
from gitcron.config import FIXED, PLACEHOLDER, Channel, Email, Monitor, Webhook, expand
from gitcron.execute import how_it_ended
from gitcron.logs import Masker
from gitcron.text import sanitise

Mask = Callable[[str], str]

REVIEW_NAME = "review.txt"  # in the run's folder, committed with the run
WIDTH = 80  # the report reads in a terminal without wrapping
TAIL_LINES = 10  # stderr lines per module in the report
MB = 1024 * 1024

TRIES = 3
TRY_TIMEOUT_SECONDS = 10.0
BACKOFF_SECONDS = (1.0, 3.0)  # before the second and the third try
RETRY_AFTER_CAP_SECONDS = 10.0  # a server asking for longer gets no more tries
MIN_TRY_SECONDS = 0.2  # less budget than this left: do not start another try
# A try ends this long before the budget does, so that its own reason ("timeout")
# is what the line says, rather than the budget's "out of time".
MARGIN_SECONDS = 0.25
MAX_ATTACHMENT_BYTES = 5 * MB
USER_AGENT = "pipeline-notify/1"

Result = str  # one line per channel: "webhook https://hooks.example.com: sent"


def review_path(log_dir: Path, run_id: str, layout: runid.Layout = "flat") -> Path:
    """`<log_dir>/runs/<run_id>/review.txt` (or in `runs/YYYY/MM/DD/`, daily)."""
    return runid.run_dir(log_dir, run_id, layout) / REVIEW_NAME


# --- The review report ---------------------------------------------------------------------


def review_report(
    record: Mapping[str, Any], stderr_tails: Mapping[str, Sequence[str]], *, pipeline: str,
    log_dir: Path, disk_written_bytes: int | None = None, mask: Mask | None = None,
    failures_in_a_row: int | None = None,
) -> str:
    """The plain-text review of a run that did not succeed, at most 80 columns wide.

    `stderr_tails` maps a module's name to the last lines of its stderr. A record
    written by an older version may lack keys: what is missing reads "unknown".
    """
    hide = mask or _same
    modules = [m for m in record.get("modules") or [] if isinstance(m, Mapping)]
    written = disk_written_bytes
    if written is None:
        written = disk_written(log_dir, str(record.get("run_id", "")), record.get("started"))
    parts = [
        _header(record, pipeline, hide),
        _section("SUMMARY", [_summary(modules), *_in_a_row(failures_in_a_row)]),
        _section("ERROR DETAILS", _error_details(modules, stderr_tails, hide)),
        _section("RECOVERY ACTIONS", _recovery_actions(modules, hide)),
        _section("METADATA", _metadata(record, modules, log_dir, written, hide)),
    ]
    return sanitise(hide("\n\n".join(parts) + "\n"))


def _same(text: str) -> str:
    return text


def _header(record: Mapping[str, Any], pipeline: str, hide: Mask) -> str:
    rule = "=" * WIDTH
    title = _cut(hide(f"PIPELINE REVIEW: {pipeline}"))
    fields = [("Run", record.get("run_id")), ("Status", str(record.get("status", "")).upper()),
              ("Started", record.get("started")), ("Finished", record.get("finished"))]
    return "\n".join([rule, title, rule, *_fields(fields, hide)])


def _section(title: str, lines: list[str]) -> str:
    return "\n".join([title, "-" * len(title), *lines])


def _fields(pairs: Iterable[tuple[str, Any]], hide: Mask) -> list[str]:
    """`Name:     value`, long values wrapped under their column."""
    lines: list[str] = []
    for name, value in pairs:
        text = "unknown" if value is None or value == "" else hide(str(value))
        lines += textwrap.wrap(text, WIDTH, initial_indent=f"{name + ':':<14}",
                               subsequent_indent=" " * 14, break_on_hyphens=False) or [name]
    return lines


def _wrap(text: str, indent: str = "") -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent + "  ",
                         break_on_hyphens=False)


def _cut(line: str, width: int = WIDTH) -> str:
    return line if len(line) <= width else line[: width - 3] + "..."


def _count(modules: list[Mapping[str, Any]], status: str) -> int:
    return sum(m.get("status") == status for m in modules)


def _summary(modules: list[Mapping[str, Any]]) -> str:
    counts = [(_count(modules, s), label) for s, label in (
        ("success", "succeeded"), ("skipped", "skipped"), ("failed", "failed"),
        ("recovered", "recovered"), ("not_run", "not run"))]
    return f"Modules: {len(modules)} total, " + ", ".join(f"{n} {label}" for n, label in counts)


def _in_a_row(count: int | None) -> list[str]:
    if count is None:
        return []
    return [f"Failures in a row: {count} (whole runs failed or interrupted, this one included)"]


def _error_details(
    modules: list[Mapping[str, Any]], tails: Mapping[str, Sequence[str]], hide: Mask
) -> list[str]:
    lines: list[str] = []
    for module in modules:
        if module.get("status") not in ("failed", "recovered"):
            continue
        name = str(module.get("name", "?"))
        if lines:
            lines.append("")
        lines += _wrap(hide(f"{name}: {module['status']}, {_how_it_ended(module)}, "
                            f"{_attempts(module)}"))
        lines += _tail(tails.get(name) or (), hide)
    return lines or ["none"]


def _how_it_ended(module: Mapping[str, Any]) -> str:
    """A record's entry (or its recovery's), as execute.how_it_ended words an attempt."""
    code = module.get("exit_code")
    if isinstance(code, bool) or not isinstance(code, int):  # an older or odd record
        return how_it_ended(None, timed_out=bool(module.get("timed_out")) or code == "timeout")
    return how_it_ended(code, timed_out=bool(module.get("timed_out")))


def _attempts(module: Mapping[str, Any]) -> str:
    n = module.get("attempts")
    return "attempts unknown" if n is None else f"{n} attempt{'' if n == 1 else 's'}"


def _tail(lines: Sequence[str], hide: Mask) -> list[str]:
    """The last lines of stderr, masked before they are cut, each cut to fit."""
    if not lines:
        return ["  (nothing on stderr)"]
    kept = list(lines)[-TAIL_LINES:]
    return ["  last lines of stderr:"] + [_cut("  | " + hide(line).expandtabs(4)) for line in kept]


def _recovery_actions(modules: list[Mapping[str, Any]], hide: Mask) -> list[str]:
    lines: list[str] = []
    for module in modules:
        recovery = module.get("recovery")
        if not isinstance(recovery, Mapping):
            continue
        seconds = recovery.get("duration_seconds")
        took = "" if seconds is None else f", {seconds:.1f} s"
        lines += _wrap(hide(f"{module.get('name', '?')}: ran {recovery.get('path', '?')}: "
                            f"{recovery.get('status', 'unknown')} "
                            f"({_how_it_ended(recovery)}{took})"))
    return lines or ["none"]


def _metadata(
    record: Mapping[str, Any], modules: list[Mapping[str, Any]], log_dir: Path, written: int,
    hide: Mask,
) -> list[str]:
    duration = record.get("duration_seconds")
    return _fields([
        ("Duration", None if duration is None else f"{duration:.1f} s"),
        ("Peak memory", _peak_memory(modules)),
        ("Disk written", f"{written / MB:.1f} MB under {log_dir.name}/"),
        ("Disk free", _disk_free(log_dir)),
        ("Trigger", record.get("trigger")),
        ("Log", record.get("log_file")),
    ], hide)


def _peak_memory(modules: list[Mapping[str, Any]]) -> str | None:
    peaks = [(m["peak_rss_mb"], str(m.get("name", "?"))) for m in modules
             if isinstance(m.get("peak_rss_mb"), (int, float))]
    if not peaks:
        return None
    mb, name = max(peaks)
    return f"{mb:.1f} MB ({name})"


def _disk_free(log_dir: Path) -> str | None:
    try:
        return f"{shutil.disk_usage(log_dir).free / MB:.1f} MB"
    except OSError:
        return None


def disk_written(log_dir: Path, run_id: str, started: Any) -> int:
    """Bytes of this run's files: its log and record, its folder, and files under
    `data/` changed since it started. Never the whole `log_dir`: thousands of old
    runs live there. The run's files are looked for in both layouts."""
    total = 0
    if runid.RUN_ID.fullmatch(run_id):
        for layout in runid.LAYOUTS:
            total += _size(runid.log_path(log_dir, run_id, layout))
            total += _size(runid.record_path(log_dir, run_id, layout))
            total += _bytes_under(runid.run_dir(log_dir, run_id, layout))
    since = _timestamp(started)
    if since is not None:
        total += _bytes_under(log_dir / "data", since)
    return total


def _size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except OSError:
        return 0


def _bytes_under(top: Path, since: float | None = None) -> int:
    """Bytes of the regular files under `top` (symlinks not followed) changed at or
    after `since`; one stat a file (scandir knows the kind of each entry)."""
    total, folders = 0, [str(top)]
    while folders:
        try:
            with os.scandir(folders.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        folders.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        info = entry.stat(follow_symlinks=False)
                        total += info.st_size if since is None or info.st_mtime >= since else 0
        except OSError:
            continue  # gone, or not readable: it holds nothing this run wrote that we can count
    return total


def _timestamp(started: Any) -> float | None:
    if not isinstance(started, str):
        return None
    try:
        moment = datetime.fromisoformat(started.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo else None


# --- Who hears of a run: failures in a row, and back to normal ----------------------------

FAILING = ("failed", "interrupted")
NEEDED_ATTENTION = ("failed", "partial", "interrupted")
# Records read back at most to find where a streak began: a pipeline failing
# since last year must not cost a read of every one of its records.
MAX_READ = 1000
Occasion = Literal["alert", "fixed"]


@dataclass(frozen=True)
class Attention:
    """What the whole runs before this one say about it."""

    failures_in_a_row: int = 0  # failed or interrupted whole runs, newest back, this one included
    streak: tuple[str, ...] = ()  # statuses of the whole runs before it that needed attention
    since: str | None = None  # when the oldest of them started
    fixed: bool = False  # this whole run succeeded, and ends the streak

    @classmethod
    def alone(cls, status: str) -> Attention:
        """For a run whose history is not known: as if it were the first."""
        return cls(1 if status in FAILING else 0)


def attention(log_dir: Path, record: Mapping[str, Any]) -> Attention:
    """Read the run records back from the newest to the newest whole run that succeeded
    (at most MAX_READ records): the runs since then needed attention."""
    streak, since = _streak(log_dir, str(record.get("run_id", "")))
    status = record.get("status")
    in_a_row = 0
    if status in FAILING:
        in_a_row = 1 + len(list(itertools.takewhile(lambda s: s in FAILING, streak)))
    whole = records.is_whole(dict(record))
    return Attention(in_a_row, streak, since, status == "success" and whole and bool(streak))


def _streak(log_dir: Path, run_id: str) -> tuple[tuple[str, ...], str | None]:
    statuses: list[str] = []
    since = None
    found = records.records_newest_first(log_dir)
    for _, previous in itertools.islice(found, MAX_READ):
        if previous.get("run_id") == run_id or not records.is_whole(previous):
            continue
        if previous.get("status") not in NEEDED_ATTENTION:
            break
        statuses.append(str(previous["status"]))
        since = previous.get("started") if isinstance(previous.get("started"), str) else since
    return tuple(statuses), since


def occasion(channel: Channel, status: str, seen: Attention) -> Occasion | None:
    """Why `channel` hears of this run, if it does: an alert for a status it asked for
    (a `failed` one only once `after_failures` whole runs failed in a row), or
    "fixed" for the first success after runs it was alerted of."""
    if seen.fixed and FIXED in channel.on and _alerted(channel, seen.streak):
        return FIXED
    if status not in channel.on:
        return None
    if status == "failed" and seen.failures_in_a_row < channel.after_failures:
        return None
    return "alert"


def _alerted(channel: Channel, streak: Sequence[str]) -> bool:
    """Did `channel` hear of any run of the streak (newest first)?"""
    in_a_row = 0
    for status in reversed(streak):
        in_a_row = in_a_row + 1 if status in FAILING else 0
        if status in channel.on and (status != "failed" or in_a_row >= channel.after_failures):
            return True
    return False


def fixed_line(record: Mapping[str, Any], seen: Attention, log_link: str | None,
               pipeline: str | None = None) -> str:
    """"back to normal after K runs that needed attention, since <time>"."""
    where = f"{pipeline}: " if pipeline else ""
    count = len(seen.streak)
    runs = f"{count} run{'' if count == 1 else 's'} that needed attention"
    since = f", since {seen.since}" if seen.since else ""
    line = (f"{where}pipeline back to normal: run {record.get('run_id', '?')} succeeded "
            f"after {runs}{since}")
    log = log_link or record.get("log_file")
    return " ".join(f"{line}; log: {log}".split() if log else line.split())


# --- Sending it out ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Try:
    """What one try at a channel came to."""

    ok: bool
    reason: str = ""
    retry: bool = False  # worth another try: a connection error, 5xx, 429, SMTP 4xx
    wait: float | None = None  # the server's Retry-After, in seconds


@dataclass(frozen=True)
class _Job:
    label: str  # "webhook https://hooks.example.com", "email ops@example.com"
    dry: str  # what it would send, for --dry-run
    work: Callable[[float], str]  # deadline (time.monotonic) -> "sent" or "failed (why)"
    hide: Mask


def send(
    channels: Sequence[Channel], record: Mapping[str, Any], review: str, *,
    env: Mapping[str, str], log_path: Path, log_link: str | None, mask: Masker, dry_run: bool,
    budget_seconds: float = 30.0, pipeline: str | None = None,
    attention: Attention | None = None,
) -> list[str]:
    """Send the run to every channel that wants it (see `occasion`); one line per channel.

    Channels are sent side by side, each within what is left of `budget_seconds`;
    one that is not done by then is given up ("failed (out of time)"). Never
    raises. A line that says "failed" deserves a warning (see `failures`).
    """
    status = str(record.get("status", ""))
    seen = attention or Attention.alone(status)
    jobs = [job for channel in channels
            if (why := occasion(channel, status, seen)) is not None
            for job in _jobs(channel, why, record, review, env, log_path, log_link, mask,
                             pipeline, seen)]
    if dry_run:
        return [job.hide(f"{job.label}: would send (dry run): {job.dry}") for job in jobs]
    return _run_all(jobs, time.monotonic() + budget_seconds)


def failures(lines: Iterable[str]) -> list[str]:
    """The lines of `send` that say a channel failed."""
    return [line for line in lines if ": failed (" in line]


def _jobs(
    channel: Channel, why: Occasion, record: Mapping[str, Any], review: str,
    env: Mapping[str, str], log_path: Path, log_link: str | None, mask: Masker,
    pipeline: str | None, seen: Attention,
) -> list[_Job]:
    if why == FIXED:
        text = fixed_line(record, seen, log_link, pipeline)
        subject = f"pipeline back to normal: run {record.get('run_id', '?')}"
        review = text + "\n"
    else:
        text = headline(record, log_link, pipeline)
        subject = f"pipeline {record.get('status', 'unknown')}: run {record.get('run_id', '?')}"
    jobs = []
    if channel.webhook is not None:
        extra = {"failures_in_a_row": seen.failures_in_a_row}
        jobs.append(_webhook_job(channel.webhook, text, record, extra, env, mask))
    if channel.email is not None:
        jobs.append(_email_job(channel.email, subject, review, env, log_path, mask))
    return jobs


def _run_all(jobs: list[_Job], deadline: float) -> list[str]:
    boxes: list[list[str]] = [[] for _ in jobs]
    threads = [threading.Thread(target=_guarded, args=(job, deadline, boxes[i]), daemon=True,
                                name=f"notify {i}") for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        # A try's timeouts bound each socket operation; this bounds the whole of it
        # (a name lookup that hangs, a server that trickles bytes).
        thread.join(max(0.0, deadline - time.monotonic()))
    return [boxes[i][0] if boxes[i] else job.hide(f"{job.label}: failed (out of time)")
            for i, job in enumerate(jobs)]


def _guarded(job: _Job, deadline: float, box: list[str]) -> None:
    """Never raises: a notification must not change the run."""
    try:
        outcome = job.work(deadline)
    except Exception as exc:
        outcome = f"failed (unexpected {type(exc).__name__}: {exc})"
    box.append(job.hide(f"{job.label}: {outcome}"))


def _retrying(attempt: Callable[[float], _Try], deadline: float,
              backoff: Sequence[float] | None = None) -> str:
    """Up to TRIES tries, each with the timeout the budget still allows."""
    backoff = BACKOFF_SECONDS if backoff is None else backoff
    reason = "no time to try"
    for n in range(1, TRIES + 1):
        left = deadline - time.monotonic() - MARGIN_SECONDS
        if left < MIN_TRY_SECONDS:
            return f"failed ({reason}; out of time)"
        outcome = attempt(min(TRY_TIMEOUT_SECONDS, left))
        tries = "" if n == 1 else f" after {n} tries"
        if outcome.ok:
            return f"sent{tries}"
        reason = outcome.reason
        if not outcome.retry or n == TRIES:
            return f"failed ({reason}){tries}"
        wait = backoff[n - 1] if outcome.wait is None else outcome.wait
        if wait > RETRY_AFTER_CAP_SECONDS:
            return f"failed ({reason}; asked to retry after {wait:g} s){tries}"
        if time.monotonic() + wait + MIN_TRY_SECONDS + MARGIN_SECONDS > deadline:
            return f"failed ({reason}; out of time){tries}"
        time.sleep(wait)
    raise AssertionError("unreachable: the last try returns")


def headline(record: Mapping[str, Any], log_link: str | None, pipeline: str | None = None
             ) -> str:
    """One line: status, run id, the modules that failed or were recovered, the log."""
    modules = [m for m in record.get("modules") or [] if isinstance(m, Mapping)]
    where = f"{pipeline}: " if pipeline else ""
    parts = [f"{where}pipeline {record.get('status', 'unknown')}: run "
             f"{record.get('run_id', '?')}"]
    for status in ("failed", "recovered"):
        names = [str(m.get("name", "?")) for m in modules if m.get("status") == status]
        if names:
            more = f" and {len(names) - 5} more" if len(names) > 5 else ""
            parts.append(f"{status}: {', '.join(names[:5])}{more}")
    log = log_link or record.get("log_file")
    if log:
        parts.append(f"log: {log}")
    return " ".join("; ".join(parts).split())  # one line, whatever the names hold


def _hider(masker: Masker) -> Mask:
    """What leaves the machine: masked, then inert."""
    return lambda text: sanitise(masker(text))


def _placeholders(texts: Iterable[str], env: Mapping[str, str]) -> list[str]:
    return [env.get(match.group(1), "") for text in texts for match in PLACEHOLDER.finditer(text)]


def tls_context(env: Mapping[str, str]) -> ssl.SSLContext:
    """The system's CAs, or the bundle SSL_CERT_FILE names (the standard variable)."""
    return ssl.create_default_context(cafile=env.get("SSL_CERT_FILE") or None)


# --- Webhook -------------------------------------------------------------------------------


def _webhook_job(hook: Webhook, text: str, record: Mapping[str, Any], extra: Mapping[str, Any],
                 env: Mapping[str, str], mask: Masker) -> _Job:
    secrets = _placeholders([hook.url, *(value for _, value in hook.headers)], env)
    url = expand(hook.url, env)
    shown = shown_url(url)
    masker = mask.extended([*secrets, url])  # the full URL may carry a secret path
    hide = _hider(masker)
    headers = {name: expand(value, env) for name, value in hook.headers}

    def work(deadline: float) -> str:
        if not shown.startswith(("http://", "https://")):
            return "failed (not an http or https URL)"
        # A record holds JSON types; anything else is sent as its (masked) text.
        body = json.dumps({"text": hide(text), "run": masker.tree(record, hide), **extra},
                          ensure_ascii=False, default=lambda value: hide(str(value))).encode()
        opener = urllib.request.build_opener(
            _NoRedirect, urllib.request.HTTPSHandler(context=tls_context(env)))
        return _retrying(lambda timeout: _post(opener, url, body, headers, timeout), deadline)

    def scrub(line: str) -> str:
        return hide(line.replace(url, shown) if url else line)

    return _Job(f"webhook {shown}", hide(text), work, scrub)


def shown_url(url: str) -> str:
    """Scheme and host of a URL: the rest (path, query, user) may hold a secret."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(a malformed URL)"
    if not parts.scheme or not parts.hostname:
        return "(a malformed URL)"
    return f"{parts.scheme}://{parts.hostname}{port}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would carry the headers (a token) to another address: refuse it."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _post(opener: urllib.request.OpenerDirector, url: str, body: bytes | None,
          headers: Mapping[str, str], timeout: float,
          content_type: str = "application/json; charset=utf-8") -> _Try:
    """POST `body`, or GET when there is none."""
    # urllib's own User-Agent is turned away by some firewalls in front of webhooks.
    kind = {} if body is None else {"Content-Type": content_type}
    request = urllib.request.Request(url, data=body, method="GET" if body is None else "POST",
                                     headers={"User-Agent": USER_AGENT, **headers, **kind})
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read(1 << 16)
        return _Try(True)
    except urllib.error.HTTPError as exc:
        exc.close()
        if 300 <= exc.code < 400:
            return _Try(False, f"HTTP {exc.code}: redirects are not followed")
        return _Try(False, f"HTTP {exc.code}", exc.code >= 500 or exc.code == 429,
                    retry_after(exc.headers.get("Retry-After")))
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLError):
            return _Try(False, f"TLS: {exc.reason.reason or exc.reason}")
        return _Try(False, _why(exc.reason), True)
    except (OSError, http.client.HTTPException) as exc:
        return _Try(False, _why(exc), True)


def _why(error: object) -> str:
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error) or type(error).__name__


def retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date (RFC 9110, 10.2.3)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - time.time())


# --- E-mail --------------------------------------------------------------------------------


def _email_job(email: Email, subject: str, review: str, env: Mapping[str, str],
               log_path: Path, mask: Masker) -> _Job:
    names = [name for name in (email.username_env, email.password_env) if name]
    hide = _hider(mask.extended(env.get(name, "") for name in names))
    more = f" and {len(email.to) - 1} more" if len(email.to) > 1 else ""
    label = f"email {email.to[0] if email.to else '(nobody)'}{more}"

    def work(deadline: float) -> str:
        missing = [name for name in names if not env.get(name)]
        if missing:
            return f"failed ({missing[0]} is not set)"
        if names and not (email.starttls or email.ssl):
            return "failed (credentials are sent only over starttls or ssl)"
        message = _message(email, hide(subject), review, log_path, hide)
        context = tls_context(env)
        return _retrying(lambda timeout: _smtp(email, message, env, context, timeout), deadline)

    attached = " (with the log)" if email.attach_log else ""
    return _Job(label, hide(subject) + attached, work, hide)


def _message(email: Email, subject: str, review: str, log_path: Path, hide: Mask
             ) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = email.sender
    message["To"] = ", ".join(email.to)
    message["Date"] = format_datetime(datetime.now().astimezone())
    # make_msgid's default domain is a name lookup (getfqdn), which can hang.
    message["Message-ID"] = make_msgid(domain=email.sender.rpartition("@")[2] or "localhost")
    body = hide(review)
    if email.attach_log:
        text, note = log_attachment(log_path, hide)
        body = f"{body.rstrip()}\n\n{note}\n"
        message.set_content(body)
        if text is not None:
            message.add_attachment(text, subtype="plain", filename=log_path.name)
    else:
        message.set_content(body)
    return message


def log_attachment(log_path: Path, hide: Mask) -> tuple[str | None, str]:
    """The log as text to attach (its tail past 5 MB, from a line's start), and a note."""
    try:
        with open(log_path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(max(0, size - MAX_ATTACHMENT_BYTES))
            data = handle.read(MAX_ATTACHMENT_BYTES)
    except OSError as exc:
        return None, f"The log could not be attached: {exc.strerror or exc}."
    if size <= MAX_ATTACHMENT_BYTES:
        return hide(data.decode("utf-8", "replace")), f"The log is attached: {log_path.name}."
    data = data[data.find(b"\n") + 1:]
    return hide(data.decode("utf-8", "replace")), (
        f"The log is attached: its last {_amount(len(data))} of {_amount(size)} "
        f"(the whole log is {log_path.name} in the repository)."
    )


def _amount(size: int) -> str:
    return f"{size / MB:.1f} MB" if size >= MB // 10 else f"{size / 1024:.0f} kB"


def _smtp(email: Email, message: EmailMessage, env: Mapping[str, str], context: ssl.SSLContext,
          timeout: float) -> _Try:
    try:
        with _connect(email, context, timeout) as smtp:
            if email.starttls:
                smtp.starttls(context=context)
            if email.username_env and email.password_env:
                smtp.login(env[email.username_env], env[email.password_env])
            smtp.send_message(message)
        return _Try(True)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        return _Try(False, f"recipients refused (SMTP {codes[0]})",
                    all(400 <= code < 500 for code in codes))
    except smtplib.SMTPResponseException as exc:
        return _Try(False, f"SMTP {exc.smtp_code}", 400 <= exc.smtp_code < 500)
    except smtplib.SMTPServerDisconnected as exc:
        # smtplib turns a timeout while reading a reply into "disconnected".
        cause = exc.__context__
        why = _why(cause) if isinstance(cause, OSError) else "the server closed the connection"
        return _Try(False, why, True)
    except smtplib.SMTPNotSupportedError:
        return _Try(False, "the server does not offer STARTTLS")
    except smtplib.SMTPException as exc:
        return _Try(False, str(exc) or type(exc).__name__)
    except ssl.SSLError as exc:
        return _Try(False, f"TLS: {exc.reason or exc}")
    except OSError as exc:
        return _Try(False, _why(exc), True)


def _connect(email: Email, context: ssl.SSLContext, timeout: float) -> smtplib.SMTP:
    if email.ssl:
        return smtplib.SMTP_SSL(email.host, email.port, timeout=timeout, context=context)
    return smtplib.SMTP(email.host, email.port, timeout=timeout)


# --- Monitor pings -------------------------------------------------------------------------

PING_BUDGET_SECONDS = 5.0  # a ping never holds the run longer than this
PING_BACKOFF_SECONDS = (0.5, 1.0)
MAX_PING_BODY_BYTES = 100 * 1000  # healthchecks.io keeps the first 100 kB of a body
Phase = Literal["start", "end"]


def new_ping_id() -> str:
    """The run's id for the monitor (healthchecks' `rid`): a UUID, fixed for the run."""
    import uuid

    return str(uuid.uuid4())


def ping_url(monitor: Monitor, url: str, phase: Phase, status: str, rid: str,
             run_id: str) -> str | None:
    """Where to ping for this phase and status, or None when this kind is not pinged then.

    healthchecks.io: `<url>/start`, `<url>`, `<url>/fail`, each with `?rid=`;
    Cronitor: `?state=run|complete|fail&series=<run_id>`; plain: one GET at the end
    of a run that exited 0.
    """
    good = status in ("success", "partial")
    if monitor.kind == "healthchecks":
        suffix = "/start" if phase == "start" else "" if good else "/fail"
        return _with(url, suffix, {"rid": rid})
    if monitor.kind == "cronitor":
        state = "run" if phase == "start" else "complete" if good else "fail"
        return _with(url, "", {"state": state, "series": run_id})
    return url if phase == "end" and good else None


def _with(url: str, suffix: str, query: Mapping[str, str]) -> str:
    """`url` with `suffix` added to its path and `query` to its query string."""
    from urllib.parse import urlencode, urlunsplit

    parts = urlsplit(url)
    added = urlencode(dict(query))
    both = f"{parts.query}&{added}" if parts.query else added
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + suffix if suffix
                                     else parts.path, query=both))


def ping(monitor: Monitor, phase: Phase, *, status: str, rid: str, run_id: str,
         env: Mapping[str, str], mask: Masker, body: str = "",
         budget_seconds: float = PING_BUDGET_SECONDS) -> str | None:
    """Ping the monitor; one line saying how it went ("... failed (why)" deserves a
    warning), or None when this kind has nothing to say at this point. Never raises,
    never takes longer than `budget_seconds`."""
    url = expand(monitor.url, env)
    target = ping_url(monitor, url, phase, status, rid, run_id)
    if target is None:
        return None
    shown = shown_url(url)
    hide = _hider(mask.extended([*_placeholders([monitor.url], env), url, target]))
    what = "start" if phase == "start" else status
    label = f"monitor {monitor.kind} {shown}: {what} ping"
    reviewed = monitor.kind == "healthchecks" and phase == "end" and status in FAILING
    data = _ping_body(body, hide) if reviewed else None

    def work(deadline: float) -> str:
        if not shown.startswith(("http://", "https://")):
            return "failed (not an http or https URL)"
        opener = urllib.request.build_opener(
            _NoRedirect, urllib.request.HTTPSHandler(context=tls_context(env)))
        return _retrying(lambda timeout: _post(opener, target, data, {}, timeout,
                                               "text/plain; charset=utf-8"),
                         deadline, PING_BACKOFF_SECONDS)

    job = _Job(label, "", work, hide)
    return _run_all([job], time.monotonic() + budget_seconds)[0]


def _ping_body(text: str, hide: Mask) -> bytes:
    """The review report, masked, cut to its first 100 kB at a character's end."""
    data = hide(text).encode()
    return data[:MAX_PING_BODY_BYTES].decode("utf-8", "ignore").encode()
