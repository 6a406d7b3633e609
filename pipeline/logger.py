"""The project's logger: loguru's, imported without two costs the runner never uses.

loguru 0.7 pays two things at import that a run does not need, together a third
of the runner's start-up:

- it imports asyncio (and with it ssl, sockets and concurrent.futures), 40-50 ms,
  only to look up two functions for coroutine sinks, which the runner never adds;
- it adds a default stderr handler, which `RunLog` removes at once; building its
  exception formatter walks sysconfig's install schemes, about 5 ms.

So, only when loguru is not imported yet: its `loguru._asyncio_loop` is replaced by
the same two functions, importing asyncio on first call, and `LOGURU_AUTOINIT` is
off for the length of the import (then put back: modules inherit the environment).
loguru is pinned in requirements.txt; tests/logger_test.py checks the names
against loguru's own module and that a coroutine sink still works.
"""

from __future__ import annotations

import os
import sys
import types
from typing import Any


def _get_running_loop() -> Any:
    import asyncio

    return asyncio.get_running_loop()


def _get_task_loop(task: Any) -> Any:
    return task.get_loop()


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
        import loguru  # noqa: F401
    finally:
        if saved is None:
            del os.environ["LOGURU_AUTOINIT"]
        else:
            os.environ["LOGURU_AUTOINIT"] = saved


_import_loguru()

from loguru import logger  # noqa: E402

__all__ = ["logger"]
