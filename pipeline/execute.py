"""Run ONE module: its process group, environment, streamed output, timeout and
signals, and what came of it (an Outcome). Knows nothing of git or the command line.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path

from pipeline.codes import ADD_MASK
from pipeline.config import ModuleSpec

# A stopped module (timeout or cancel) gets this long between SIGTERM (or the
# SIGINT we forward) and SIGKILL. GitHub cancels a run with SIGINT, then SIGTERM
# 7.5 s later, then kills everything 2.5 s after that: 3 s here leaves time to
# write the log and record and to push them.
KILL_GRACE_SECONDS = 3.0
READ_SIZE = 1 << 16
MAX_LINE_BYTES = 1 << 20  # a longer line without a newline is cut, to bound memory
STDERR_TAIL_LINES = 10
# Without a pidfd to wait on (not Linux), how often to look for the module's exit.
POLL_SECONDS = 0.01

OutputSink = Callable[[list[str]], None]


@dataclass(frozen=True)
class RunContext:
    """What every module of a run is told through its environment."""

    run_id: str
    config_path: Path
    log_dir: Path
    root: Path
    tz: tzinfo
    last_run_date: str | None
    started: datetime
    dry_run: bool = False
    force: bool = False
    window_start: datetime | None = None
    window_end: datetime | None = None
    run_dir: Path | None = None


@dataclass(frozen=True)
class Outcome:
    """One attempt at one module."""

    exit_code: int | None  # negative: killed by that signal; None: never started
    started: datetime
    finished: datetime
    duration_seconds: float
    timed_out: bool = False
    interrupted: bool = False
    peak_rss_mb: float | None = None
    stderr_tail: tuple[str, ...] = ()
    start_error: str = ""
    stray_processes: bool = False  # the module left processes behind; they were killed

    def describe(self) -> str:
        if self.start_error:
            return f"could not start: {self.start_error}"
        if self.timed_out:
            return "timed out"
        if self.exit_code is not None and self.exit_code < 0:
            return f"killed by {signal.Signals(-self.exit_code).name}"
        return f"exit code {self.exit_code}"


def module_env(base: Mapping[str, str], ctx: RunContext, spec: ModuleSpec) -> dict[str, str]:
    """The orchestrator's environment plus the PIPELINE_* variables of the contract."""
    env = dict(
        base,
        PIPELINE_RUN_ID=ctx.run_id,
        PIPELINE_CONFIG=str(ctx.config_path),
        PIPELINE_LOG_DIR=str(ctx.log_dir),
        PIPELINE_MODULE=spec.name,
        PIPELINE_LAST_RUN_DATE=ctx.last_run_date or "",
        PIPELINE_RUN_STARTED=ctx.started.isoformat(timespec="seconds"),
        PIPELINE_DRY_RUN="1" if ctx.dry_run else "0",
        PIPELINE_FORCE="1" if ctx.force else "0",
        PIPELINE_WINDOW_START=_iso(ctx.window_start),
        PIPELINE_WINDOW_END=_iso(ctx.window_end or ctx.started),
        PIPELINE_RUN_DIR=str(ctx.run_dir or ""),
    )
    # Python block-buffers a pipe: its lines would reach the log in bursts, and
    # out of order between stdout and stderr. A module may still opt out.
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _iso(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else ""


class Cancel:
    """Catches SIGINT and SIGTERM for the length of a run.

    The handlers only note the signal; a wake-up pipe makes a waiting select()
    return at once, so a module is stopped without polling.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self.count = 0
        self._read_fd = self._write_fd = -1
        self._saved: dict[int, object] = {}
        self._saved_wakeup = -1

    def __enter__(self) -> Cancel:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._saved_wakeup = signal.set_wakeup_fd(self._write_fd)
        for signum in self.SIGNALS:
            self._saved[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        signal.set_wakeup_fd(self._saved_wakeup)
        os.close(self._read_fd)
        os.close(self._write_fd)

    def _handle(self, signum: int, frame: object) -> None:
        self.signum = self.signum or signum
        self.count += 1

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def fileno(self) -> int:
        return self._read_fd

    def drain(self) -> None:
        try:
            while os.read(self._read_fd, 512):
                pass
        except BlockingIOError:
            pass

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True, at once, if a signal came."""
        deadline = time.monotonic() + seconds
        with selectors.DefaultSelector() as selector:
            selector.register(self._read_fd, selectors.EVENT_READ)
            while not self.requested and (left := deadline - time.monotonic()) > 0:
                selector.select(left)
                self.drain()
        return self.requested


class _Lines:
    """Cuts a byte stream into complete lines of text."""

    def __init__(self) -> None:
        self._pending = bytearray()

    def feed(self, chunk: bytes) -> list[str]:
        self._pending += chunk
        end = self._pending.rfind(b"\n")
        if end < 0:
            return self.flush() if len(self._pending) > MAX_LINE_BYTES else []
        # A newline byte never occurs inside a UTF-8 sequence: this cut is safe.
        text = self._pending[:end].decode("utf-8", "replace")
        del self._pending[: end + 1]
        return _split(text)

    def flush(self) -> list[str]:
        if not self._pending:
            return []
        text = self._pending.decode("utf-8", "replace")
        self._pending.clear()
        return _split(text)


def _split(text: str) -> list[str]:
    lines = text.split("\n")
    return [line.rstrip("\r") for line in lines] if "\r" in text else lines


def run_module(
    spec: ModuleSpec,
    ctx: RunContext,
    env: Mapping[str, str],
    output: OutputSink,
    cancel: Cancel,
) -> Outcome:
    """Run one attempt of `spec`; every line it prints goes to `output` as it arrives."""
    started, t0 = datetime.now(ctx.tz), time.monotonic()
    try:
        proc = subprocess.Popen(
            spec.command,
            cwd=ctx.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: a stop reaches its children
        )
    except OSError as exc:
        finished = datetime.now(ctx.tz)
        return Outcome(None, started, finished, time.monotonic() - t0, start_error=str(exc))
    watch = _Watch(proc, t0 + spec.timeout_seconds, output, cancel)
    watch.run()
    return Outcome(
        exit_code=watch.exit_code,
        started=started,
        finished=datetime.now(ctx.tz),
        duration_seconds=round(time.monotonic() - t0, 3),
        timed_out=watch.timed_out,
        interrupted=watch.interrupted,
        peak_rss_mb=watch.peak_rss_mb,
        stderr_tail=tuple(line for line in watch.tail if not line.startswith(ADD_MASK)),
        stray_processes=watch.strays,
    )


class _Watch:
    """Streams a running module's output until it has exited and both pipes closed.

    One thread, one selector over both pipes, the process (a pidfd where the
    platform has one) and the signal wake-up pipe: no deadlock when a module
    fills one pipe only, and no wait for the module's end before its lines show.
    """

    def __init__(
        self, proc: subprocess.Popen[bytes], deadline: float, output: OutputSink, cancel: Cancel
    ) -> None:
        self.proc = proc
        self.deadline = deadline
        self.output = output
        self.cancel = cancel
        self.exit_code: int | None = None
        self.peak_rss_mb: float | None = None
        self.timed_out = self.interrupted = self.strays = False
        self.tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._kill_at: float | None = None
        self._drain_until: float | None = None
        self._selector: selectors.BaseSelector | None = None
        self._streams = {proc.stdout.fileno(): _Lines(), proc.stderr.fileno(): _Lines()}  # type: ignore[union-attr]
        self._stderr_fd = proc.stderr.fileno()  # type: ignore[union-attr]

    def run(self) -> None:
        pidfd = _pidfd(self.proc.pid)
        with selectors.DefaultSelector() as selector:
            self._selector = selector
            for fd in self._streams:
                selector.register(fd, selectors.EVENT_READ)
            selector.register(self.cancel.fileno(), selectors.EVENT_READ)
            if pidfd is not None:
                selector.register(pidfd, selectors.EVENT_READ)  # readable once it exits
            try:
                self._loop(selector, pidfd)
            finally:
                if pidfd is not None:
                    os.close(pidfd)
                self.proc.stdout.close()  # type: ignore[union-attr]
                self.proc.stderr.close()  # type: ignore[union-attr]

    def _loop(self, selector: selectors.BaseSelector, pidfd: int | None) -> None:
        if self.cancel.requested:  # a signal came just before the module started
            self._on_signal()
        while self._streams or self.exit_code is None:
            for key, _ in selector.select(self._timeout(pidfd)):
                self._on_ready(key.fd)
            if self.exit_code is None and (pidfd is None or not self._streams):
                self._reap(os.WNOHANG)
            self._check_clock()

    def _timeout(self, pidfd: int | None) -> float:
        wakes = [self.deadline, self._kill_at, self._drain_until]
        left = max(0.0, min(w for w in wakes if w is not None) - time.monotonic())
        return left if pidfd is not None else min(left, POLL_SECONDS)

    def _on_ready(self, fd: int) -> None:
        if fd == self.cancel.fileno():
            self.cancel.drain()
            self._on_signal()
        elif fd in self._streams:
            self._read(fd)
        else:  # the pidfd: the module has exited
            assert self._selector is not None
            self._selector.unregister(fd)
            if self.exit_code is None:
                self._reap(0)

    def _read(self, fd: int) -> None:
        chunk = os.read(fd, READ_SIZE)
        if chunk:
            self._emit(fd, self._streams[fd].feed(chunk))
        else:
            self._close(fd)

    def _close(self, fd: int) -> None:
        assert self._selector is not None
        self._selector.unregister(fd)
        self._emit(fd, self._streams.pop(fd).flush())

    def _emit(self, fd: int, lines: list[str]) -> None:
        if lines:
            if fd == self._stderr_fd:
                self.tail.extend(lines)
            self.output(lines)

    def _on_signal(self) -> None:
        if not self.interrupted:
            self.interrupted = True
            self._stop(signal.Signals(self.cancel.signum or signal.SIGTERM))
        elif self.cancel.count > 1:  # asked twice: no more grace
            self._signal_group(signal.SIGKILL)

    def _check_clock(self) -> None:
        now = time.monotonic()
        if self.exit_code is None and not self.timed_out and now >= self.deadline:
            self.timed_out = True
            self._stop(signal.SIGTERM)
        if self._kill_at is not None and now >= self._kill_at:
            self._kill_at = None
            self._signal_group(signal.SIGKILL)
        if self._drain_until is not None and now >= self._drain_until:
            # Pipes still held by a process that left the group (setsid): stop reading.
            for fd in list(self._streams):
                self._close(fd)

    def _stop(self, signum: signal.Signals) -> None:
        """Ask the whole group to stop; SIGKILL follows after the grace."""
        self._signal_group(signum)
        self._kill_at = time.monotonic() + KILL_GRACE_SECONDS

    def _signal_group(self, signum: int) -> bool:
        try:
            os.killpg(self.proc.pid, signum)
        except (ProcessLookupError, PermissionError):
            return False  # the group is gone already (PermissionError: macOS, zombie leader)
        return True

    def _reap(self, flags: int) -> None:
        pid, status, rusage = os.wait4(self.proc.pid, flags)
        if pid == 0:
            return
        self.exit_code = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.exit_code  # so Popen does not think it still runs
        self.peak_rss_mb = _megabytes(rusage.ru_maxrss)
        self._kill_at = None
        self._drain_until = time.monotonic() + KILL_GRACE_SECONDS
        # Whatever the module left running (a daemon, a grandchild holding its
        # pipes) is part of the stage: it ends with it.
        self.strays = self._signal_group(signal.SIGKILL)


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when `pid` exits (Linux 5.3 and later)."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _megabytes(maxrss: int) -> float:
    """ru_maxrss is in kilobytes on Linux and in bytes on macOS (getrusage(2))."""
    kilobytes = maxrss / 1024 if sys.platform == "darwin" else maxrss
    return round(kilobytes / 1024, 1)
