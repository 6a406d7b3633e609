"""Run ONE module: its process group, environment, streamed output, timeout and
signals, and what came of it (an Outcome). Knows nothing of git or the command line.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import os
import selectors
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Literal, NamedTuple

from gitcron import commands, interrupt
from gitcron.config import ModuleSpec
from gitcron.contract import RunContext
from gitcron.text import sanitise

# A stopped module (timeout or cancel) gets this long between SIGTERM (or the
# SIGINT we forward) and SIGKILL. GitHub cancels a run with SIGINT, then SIGTERM
# 7.5 s later, then kills everything 2.5 s after that: 3 s here leaves time to
# write the log and record and to push them.
KILL_GRACE_SECONDS = 3.0
# Pipes of 1 MiB (Linux's pipe-max-size for unprivileged users): a module that
# prints fast is rarely blocked, and its lines come in few reads.
PIPE_BYTES = 1 << 20
READ_SIZE = 1 << 16
# After a read that did not fill the buffer, wait this long for more: lines
# that a module writes one by one then arrive many to a read (each read has a
# fixed cost) and still reach the log live.
GATHER_SECONDS = 0.002
MAX_LINE_BYTES = 1 << 20  # a longer line without a newline is cut, to bound memory
# What a failure message repeats of a module's stderr: its last lines, capped.
STDERR_TAIL_LINES = 10
STDERR_TAIL_CHARS = 4096
STDERR_LINE_CHARS = 500
CUT_MARK = " [...]"
# Without a pidfd to wait on (not Linux), how often to look for the module's exit.
POLL_SECONDS = 0.01
PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
NOT_EXECUTABLE_HINT = "add a #! line or use a .py/.sh extension"

Stream = Literal["stdout", "stderr"]
# Receives what a module printed on a stream, as it arrives: one or more lines,
# each ending in a newline; or, without the final newline, a piece of a line
# longer than MAX_LINE_BYTES, whose rest comes in a later call. It may raise
# OSError (the log cannot be written): the module is then stopped.
OutputSink = Callable[[Stream, str], None]

# Printable bytes, tab, newline, and every byte of a multi-byte UTF-8 sequence:
# a chunk of only these needs no cleaning but for the C1 controls (U+0080 to
# U+009F, which UTF-8 writes as 0xC2 0x80 to 0xC2 0x9F).
_PLAIN_BYTES = bytes(range(0x20, 0x7F)) + b"\t\n" + bytes(range(0x80, 0x100))
_C1_LEAD = b"\xc2"
_subreaper = False  # set by become_subreaper()


class Outcome(NamedTuple):
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
    timeout_seconds: float = 0.0  # the limit it ran under
    write_error: str = ""  # its output could not be written (a full disk): it was stopped

    def describe(self) -> str:
        """How this attempt ended, in the words of every message that tells it."""
        if self.start_error:
            return f"could not start: {self.start_error}"
        if self.write_error:
            return f"stopped: its output could not be written to the log ({self.write_error})"
        if self.timed_out and not self.interrupted:
            return f"timed out after {self.timeout_seconds:g} s"
        return how_it_ended(self.exit_code, interrupted=self.interrupted)


def how_it_ended(exit_code: int | None, *, timed_out: bool = False,
                 interrupted: bool = False) -> str:
    """`exit code 3`, `killed by SIGKILL`, `timed out`, `interrupted`: said once, for
    an attempt (Outcome.describe) and for a run record's entry (the review report)."""
    if interrupted:
        return "interrupted"
    if timed_out:
        return "timed out"
    if exit_code is None:
        return "exit code unknown"
    if exit_code < 0:
        return f"killed by {signal_name(-exit_code)}"
    return f"exit code {exit_code}"


def signal_name(number: int) -> str:
    """`SIGKILL`; for a number without a name (a real-time signal), `signal 40 (SIGRTMIN+6)`."""
    if number in {s.value for s in signal.Signals}:
        return signal.Signals(number).name
    low, high = getattr(signal, "SIGRTMIN", 0), getattr(signal, "SIGRTMAX", 0)
    if low and low <= number <= high:
        return f"signal {number} (SIGRTMIN+{number - low})"
    return f"signal {number}"


def become_subreaper() -> bool:
    """Have orphaned descendants come back to this process (Linux; elsewhere nothing).

    A module's daemon that called setsid() left its process group, so stopping
    the group misses it; as a child subreaper we get it back when its parent
    exits, and end it with its module. True if this process now is one.
    """
    global _subreaper
    if sys.platform.startswith("linux") and not _subreaper:
        libc = ctypes.CDLL(None, use_errno=True)
        _subreaper = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    return _subreaper


class Cancel:
    """Catches SIGINT and SIGTERM for the length of a run.

    The handlers only note the signal; a wake-up pipe makes a waiting select()
    return at once, so a module is stopped without polling.
    """

    SIGNALS = interrupt.SIGNALS

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
        if (signum := interrupt.noted()) is not None:  # came while starting, not lost
            self._handle(signum, None)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        signal.set_wakeup_fd(self._saved_wakeup)
        os.close(self._read_fd)
        os.close(self._write_fd)

    def ignore_after(self) -> None:
        """When the scope ends, ignore the signals instead of restoring the handlers
        found: work that is finished cannot be cancelled, and a late signal must not
        turn its exit code into a crash."""
        self._saved = {signum: signal.SIG_IGN for signum in self.SIGNALS}

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


def _dirty(raw: bytes | bytearray) -> bool:
    """Whether `raw` may hold something sanitise() changes (a quick test, in C)."""
    return bool(raw.translate(None, _PLAIN_BYTES)) or _C1_LEAD in raw


class _Lines:
    """Cuts a byte stream into text: complete lines, or pieces of a line too long.

    The usual chunk holds many lines: it is decoded and checked whole, and only
    a chunk with a control character goes through sanitise().
    """

    def __init__(self) -> None:
        self._pending = bytearray()
        self._dirty = False  # whether what is pending may need sanitise()

    def feed(self, chunk: bytes) -> str:
        dirty = _dirty(chunk)
        # A newline byte never occurs inside a UTF-8 sequence: this cut is safe.
        end = chunk.rfind(b"\n") + 1
        if not end:
            self._pending += chunk
            self._dirty |= dirty
            return self._cut() if len(self._pending) > MAX_LINE_BYTES else ""
        if self._pending:
            self._pending += memoryview(chunk)[:end]
            text = self._pending.decode("utf-8", "replace")
            dirty |= self._dirty
        else:
            text = str(memoryview(chunk)[:end], "utf-8", "replace")
        self._pending = bytearray(memoryview(chunk)[end:])
        self._dirty = dirty and bool(self._pending)
        return sanitise(text) if dirty else text

    def _cut(self) -> str:
        end = MAX_LINE_BYTES
        while end > 0 and self._pending[end] & 0xC0 == 0x80:  # not inside a UTF-8 sequence
            end -= 1
        raw = self._pending[:end]
        del self._pending[:end]
        return self._text(raw)

    def flush(self) -> str:
        """The last line, even without its newline."""
        if not self._pending:
            return ""
        raw = self._pending + b"\n"
        self._pending = bytearray()
        return self._text(raw)

    def _text(self, raw: bytearray) -> str:
        text = raw.decode("utf-8", "replace")
        return sanitise(text) if self._dirty and _dirty(raw) else text


class _Tail:
    """The last lines of stderr, for a failure message: few, and each cut short.

    A line longer than MAX_LINE_BYTES arrives in pieces; the tail keeps its
    start alone (cut short), never the start of a later piece: a secret cut in
    two there would be masked in the stream, where the pieces are joined, but
    not here.
    """

    def __init__(self) -> None:
        self.lines: deque[str] = deque()
        self._chars = 0
        self._open = False  # the last line added is still to be continued

    def add(self, text: str) -> None:
        if self._open:
            end = text.find("\n")
            if end < 0:
                return
            text = text[end + 1:]
        self._open = bool(text) and not text.endswith("\n")
        for line in _last_lines(text, STDERR_TAIL_LINES):
            command = commands.parse(line, commands.KNOWN)
            if command is not None and command.name == commands.ADD_MASK:
                continue
            self.lines.append(line)
            self._chars += len(line)
        while len(self.lines) > STDERR_TAIL_LINES or self._chars > STDERR_TAIL_CHARS:
            self._chars -= len(self.lines.popleft())


def _last_lines(text: str, count: int) -> list[str]:
    """The last `count` lines of `text`, each cut to STDERR_LINE_CHARS, without
    copying the rest (a chunk may hold a megabyte)."""
    lines: list[str] = []
    end = len(text) - 1 if text.endswith("\n") else len(text)
    while len(lines) < count and end >= 0:
        start = text.rfind("\n", 0, end) + 1
        line = text[start:min(end, start + STDERR_LINE_CHARS)]
        lines.append(line + CUT_MARK if end - start > STDERR_LINE_CHARS else line)
        end = start - 1
    return lines[::-1]


def run_module(
    spec: ModuleSpec,
    ctx: RunContext,
    env: Mapping[str, str],
    output: OutputSink,
    cancel: Cancel,
) -> Outcome:
    """Run one attempt of `spec`; what it prints goes to `output` as it arrives."""
    started, t0 = datetime.now(ctx.tz), time.monotonic()
    before = _children() if _subreaper else {}
    # Plain pipes, read with os.read: Popen's file objects around them would go unused.
    (stdout, stdout_end), (stderr, stderr_end) = os.pipe2(os.O_CLOEXEC), os.pipe2(os.O_CLOEXEC)
    start_error = ""
    try:
        proc = subprocess.Popen(
            spec.command,
            cwd=ctx.root,
            env=env,
            stdin=_devnull(),
            stdout=stdout_end,
            stderr=stderr_end,
            start_new_session=True,  # its own process group: a stop reaches its children
            pass_fds=ctx.keep_fds,
        )
    except OSError as exc:
        start_error = _start_error(exc)
    finally:
        os.close(stdout_end)  # the module holds its ends now: EOF comes when it closes them
        os.close(stderr_end)
    if start_error:
        os.close(stdout)
        os.close(stderr)
        finished = datetime.now(ctx.tz)
        return Outcome(None, started, finished, time.monotonic() - t0,
                       start_error=start_error, timeout_seconds=spec.timeout_seconds)
    watch = _Watch(proc, (stdout, stderr), t0 + spec.timeout_seconds, output, cancel,
                   set(before))
    watch.run()
    return Outcome(
        exit_code=watch.exit_code,
        started=started,
        finished=datetime.now(ctx.tz),
        duration_seconds=round(time.monotonic() - t0, 3),
        timed_out=watch.timed_out,
        interrupted=watch.interrupted,
        peak_rss_mb=watch.peak_rss_mb,
        stderr_tail=tuple(watch.tail.lines),
        stray_processes=watch.strays,
        timeout_seconds=spec.timeout_seconds,
        write_error=watch.write_error,
    )


@functools.cache
def _devnull() -> int:
    """Every module's stdin, opened once."""
    return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)


def _start_error(exc: OSError) -> str:
    if exc.errno == errno.ENOEXEC:  # a run bit, but neither a #! line nor a binary
        return f"{exc.strerror} ({NOT_EXECUTABLE_HINT})"
    return str(exc)


class _Watch:
    """Streams a running module's output until it has exited and both pipes closed.

    One thread, one selector over both pipes, the process (a pidfd where the
    platform has one) and the signal wake-up pipe: no deadlock when a module
    fills one pipe only, and no wait for the module's end before its lines show.
    """

    def __init__(self, proc: subprocess.Popen[bytes], pipes: tuple[int, int], deadline: float,
                 output: OutputSink, cancel: Cancel, before: set[int]) -> None:
        self.proc = proc
        self.deadline = deadline
        self.output = output
        self.cancel = cancel
        self.exit_code: int | None = None
        self.peak_rss_mb: float | None = None
        self.timed_out = self.interrupted = self.strays = self.stopped = False
        self.write_error = ""
        self.tail = _Tail()
        self._before = before  # our children before the module started: not its leftovers
        self._kill_at: float | None = None
        self._drain_until: float | None = None
        self._selector: selectors.BaseSelector | None = None
        stdout, stderr = self._pipes = pipes
        self._names: dict[int, Stream] = {stdout: "stdout", stderr: "stderr"}
        self._streams = {stdout: _Lines(), stderr: _Lines()}
        for fd in self._streams:
            # Linux only; elsewhere (or when refused) a default pipe works too.
            with contextlib.suppress(OSError, AttributeError):
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)

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
                for fd in self._pipes:
                    os.close(fd)

    def _loop(self, selector: selectors.BaseSelector, pidfd: int | None) -> None:
        if self.cancel.requested:  # a signal came just before the module started
            self._on_signal()
        while self._streams or self.exit_code is None:
            gather = False
            for key, _ in selector.select(self._timeout(pidfd)):
                gather |= self._on_ready(key.fd)
            if self.exit_code is None and (pidfd is None or not self._streams):
                self._reap(os.WNOHANG)
            self._check_clock()
            if gather and self.exit_code is None:
                time.sleep(GATHER_SECONDS)

    def _timeout(self, pidfd: int | None) -> float:
        wakes = [self.deadline, self._kill_at, self._drain_until]
        left = max(0.0, min(w for w in wakes if w is not None) - time.monotonic())
        return left if pidfd is not None else min(left, POLL_SECONDS)

    def _on_ready(self, fd: int) -> bool:
        """Handle one ready descriptor; True after a read that left the pipe empty."""
        if fd == self.cancel.fileno():
            self.cancel.drain()
            self._on_signal()
        elif fd in self._streams:
            return self._read(fd)
        else:  # the pidfd: the module has exited
            assert self._selector is not None
            self._selector.unregister(fd)
            if self.exit_code is None:
                self._reap(0)
        return False

    def _read(self, fd: int) -> bool:
        chunk = os.read(fd, READ_SIZE)
        if not chunk:
            self._close(fd)
            return False
        self._emit(fd, self._streams[fd].feed(chunk))
        return len(chunk) < READ_SIZE

    def _close(self, fd: int) -> None:
        assert self._selector is not None
        self._selector.unregister(fd)
        self._emit(fd, self._streams.pop(fd).flush())

    def _emit(self, fd: int, text: str) -> None:
        if not text:
            return
        stream = self._names[fd]
        if stream == "stderr":
            self.tail.add(text)
        try:
            self.output(stream, text)
        except OSError as exc:  # the log cannot be written: the module must not run on unlogged
            if not self.write_error:
                self.write_error = exc.strerror or str(exc)
                self._stop(signal.SIGTERM)

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
        if self.exit_code is not None:
            return
        self.stopped = True
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
        self.strays = self._end_leftovers()

    def _end_leftovers(self) -> bool:
        """Kill what the module left behind; whether any of it was running on its own.

        After our own stop of the group, only what had escaped the group counts.
        """
        if not _subreaper:
            return self._signal_group(signal.SIGKILL) and not self.stopped
        leftovers = self._orphans()
        running = any(state != "Z" and not (self.stopped and group == self.proc.pid)
                      for state, group in leftovers.values())
        self._signal_group(signal.SIGKILL)
        for _ in range(1000):  # each round ends one generation of a process tree
            if not leftovers:
                break
            for pid, (_, group) in leftovers.items():
                _kill(pid, group)
            leftovers = self._orphans()
        return running

    def _orphans(self) -> dict[int, tuple[str, int]]:
        return {pid: info for pid, info in _children().items() if pid not in self._before}


def _children() -> dict[int, tuple[str, int]]:
    """This process's children: pid -> (state, process group), from /proc (Linux).

    Most modules leave nothing: one waitid() says whether we have any child at all,
    and only then is /proc read (a file per process of the machine).
    """
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return {}
    me, found = str(os.getpid()).encode(), {}
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc"):
            if name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    # After the command name, which may hold anything, in parentheses.
                    fields = _read_stat(name).rsplit(b")", 1)[1].split()
                    if fields[1] == me:
                        found[int(name)] = (fields[0].decode(), int(fields[2]))
    return found


def _read_stat(pid: str) -> bytes:
    fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    try:
        return os.read(fd, 1024)
    finally:
        os.close(fd)


def _kill(pid: int, group: int) -> None:
    """SIGKILL an orphan (and the group it leads, after setsid) and reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


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
