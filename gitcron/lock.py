"""One run at a time in a checkout: an exclusive `flock` on a file in the git
directory (`.git/gitcron.lock`), or in `log_dir` outside a repository.

The file is never one that can be committed. The holder writes its pid and
start into it after taking the lock, so that a second run can say who holds it.
The kernel drops the lock when the holder's last descriptor closes, so a killed
run never leaves a stale lock. The descriptor is handed to the run's local git
commands and to its modules (`held_fds`), which then keep the checkout locked
until they end: a module still running after its orchestrator was killed keeps
the next run out, instead of running beside it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

from gitcron.codes import FatalError

LOCK_NAME = "gitcron.lock"
OUTSIDE_GIT_NAME = ".gitcron.lock"
POLL_SECONDS = 0.05
_HELD: set[int] = set()


class Busy(Exception):
    """Another run holds the lock; the message names its pid and start."""


class Held(NamedTuple):
    path: Path
    fd: int
    since: float  # time.time() when the lock was taken
    waited: bool = False  # another run held it first: what it wrote is newer than we read


def find_git_dir(start: Path) -> Path | None:
    """The git directory of the work tree holding `start`: walk up to a `.git`
    folder, or follow a `.git` file (`gitdir: ...`, as in worktrees and submodules)."""
    start = start.absolute()
    for folder in (start, *start.parents):
        dot = folder / ".git"
        if dot.is_dir():
            return dot
        if dot.is_file():
            return _follow(dot)
    return None


def _follow(dot_git: Path) -> Path | None:
    try:
        text = dot_git.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    if not text.startswith("gitdir:"):
        return None
    target = Path(text.removeprefix("gitdir:").strip())
    return target if target.is_absolute() else (dot_git.parent / target).resolve()


def lock_path(root: Path, log_dir: Path) -> Path:
    git_dir = find_git_dir(root)
    return git_dir / LOCK_NAME if git_dir else log_dir / OUTSIDE_GIT_NAME


def held_fds() -> tuple[int, ...]:
    """Descriptors of the locks this process holds, to pass to child processes
    that must keep the checkout locked after we are gone (local git commands)."""
    return tuple(sorted(_HELD))


@contextmanager
def hold(root: Path, log_dir: Path, wait_seconds: float = 0.0) -> Iterator[Held]:
    """Hold this checkout's lock; Busy when another run keeps it past `wait_seconds`."""
    path = lock_path(root, log_dir)
    fd = _open(path)
    try:
        waited = _acquire(fd, path, wait_seconds)
        since = time.time()
        _write_holder(fd, since)
        _HELD.add(fd)
        yield Held(path, fd, since, waited)
    finally:
        _HELD.discard(fd)
        os.close(fd)  # releases the lock (unless a child still holds the descriptor)


def _open(path: Path) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise FatalError(f"{path}: cannot open the run lock: {exc.strerror or exc}") from None


def _acquire(fd: int, path: Path, wait_seconds: float) -> bool:
    """Take the lock; True if another run held it first."""
    deadline = time.monotonic() + max(wait_seconds, 0.0)
    waited = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return waited
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise Busy(_busy_message(fd, path, wait_seconds)) from None
            waited = True
            time.sleep(POLL_SECONDS)


def _write_holder(fd: int, since: float) -> None:
    started = datetime.fromtimestamp(since).astimezone().isoformat(timespec="seconds")
    os.ftruncate(fd, 0)
    # On a full disk the lock holds all the same; only a waiting run cannot name us.
    with contextlib.suppress(OSError):
        os.pwrite(fd, f"pid {os.getpid()}\nstarted {started}\n".encode(), 0)


def _alive(pid: str) -> bool:
    """Whether process `pid` exists (True when that cannot be told)."""
    if not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def holder(fd: int) -> dict[str, str]:
    """What the holder wrote: {"pid": ..., "started": ...} (empty while it writes)."""
    text = os.pread(fd, 4096, 0).decode(errors="replace")
    return dict(line.partition(" ")[::2] for line in text.splitlines() if " " in line)


def _busy_message(fd: int, path: Path, wait_seconds: float) -> str:
    info = holder(fd)
    who = f"pid {info.get('pid', '?')}, started {info.get('started', '?')}"
    if not _alive(info.get("pid", "")):
        # Modules inherit the lock: one outliving a killed run holds it until it ends.
        who += ", which is gone: a module it started is still running"
    waited = f" after waiting {wait_seconds:g} s" if wait_seconds > 0 else ""
    return (f"another run holds this checkout's lock ({who}; {path}){waited}: nothing ran "
            "(use --wait SECONDS to wait for it)")
