"""A cancel while the runner is still starting, before a run's own handlers
(execute.Cancel) take over: it ends the start at once, and it is never lost."""

from __future__ import annotations

import signal
import sys
from typing import Any

# SIGHUP: the terminal that started the run went away; a cancel like the others.
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_noted: list[int] = []


def catch() -> None:
    """From now until a run's own handlers replace these, a cancel raises
    KeyboardInterrupt and is noted. SIGINT is set too: a shell starts a background
    job with it ignored, and the run must be cancellable however it was started."""
    for signum in SIGNALS:
        signal.signal(signum, _note)
    sys.unraisablehook = _unraisable


def noted() -> int | None:
    """The first signal that came while starting, or None."""
    return _noted[0] if _noted else None


def _note(signum: int, frame: object) -> None:
    _noted.append(signum)
    raise KeyboardInterrupt


def _unraisable(unraisable: Any) -> None:
    # CPython runs some code (an import lock's weakref callback, a finaliser) where an
    # exception cannot propagate: it prints "Exception ignored in ..." with a traceback
    # and goes on. A cancel raised there is noted, and execute.Cancel acts on it.
    if issubclass(unraisable.exc_type, KeyboardInterrupt) and _noted:
        return
    sys.__unraisablehook__(unraisable)
