"""The project's logger: loguru's, imported without two costs the runner never uses.

loguru 0.7 pays two things at import that a run does not need, together a third
of the runner's start-up:

- it imports asyncio (and with it ssl, sockets and concurrent.futures), 40-50 ms,
  only to look up two functions for coroutine sinks, which the runner never adds;
- it adds a default stderr handler, which `RunLog` removes at once;
- every handler's exception formatter walks sysconfig's install schemes (about
  5 ms each) for the library folders, which it reads only to format a traceback.

So, only when loguru is not imported yet: its `loguru._asyncio_loop` is replaced by
the same two functions, importing asyncio on first call; `LOGURU_AUTOINIT` is off
for the length of the import (then put back: modules inherit the environment); and
the library folders are found when a traceback first needs them, once.
loguru is pinned in requirements.txt; tests/logger_test.py checks these against
loguru's own source, and that coroutine sinks and tracebacks still work.
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Callable, Iterator
from functools import cache, partial
from typing import Any


def _get_running_loop() -> Any:
    import asyncio

    return asyncio.get_running_loop()


def _get_task_loop(task: Any) -> Any:
    return task.get_loop()


class _LibDirs:
    """Stands for loguru's list of library folders, which it only iterates."""

    def __init__(self, find: Callable[[], list[str]]) -> None:
        self._find = find  # cached: found at the first traceback, then kept

    def __iter__(self) -> Iterator[str]:
        return iter(self._find())


def _import_loguru() -> None:
    if "loguru" in sys.modules:
        return
    shim = types.ModuleType("loguru._asyncio_loop", "asyncio, imported on first use")
    shim.get_running_loop = _get_running_loop  # type: ignore[attr-defined]
    shim.get_task_loop = _get_task_loop  # type: ignore[attr-defined]
    sys.modules[shim.__name__] = shim
    saved = os.environ.get("LOGURU_AUTOINIT")
    os.environ["LOGURU_AUTOINIT"] = "False"
    try:
        from loguru import _better_exceptions
    finally:
        if saved is None:
            del os.environ["LOGURU_AUTOINIT"]
        else:
            os.environ["LOGURU_AUTOINIT"] = saved
    formatter = _better_exceptions.ExceptionFormatter
    formatter._get_lib_dirs = staticmethod(partial(_LibDirs, cache(formatter._get_lib_dirs)))


_import_loguru()

from loguru import logger  # noqa: E402

__all__ = ["logger"]
