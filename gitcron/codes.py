"""Exit codes (of modules and of the orchestrator) and the one error type."""

from __future__ import annotations

# What a module's exit code means.
MODULE_OK = 0
MODULE_SKIP = 10  # "skipped, conditions not met": logged as a skip, never retried

# What the orchestrator's exit code means (docs/exit-codes.md).
EXIT_OK = 0  # success, or partial (with a warning)
EXIT_FAILED = 1  # a critical module failed, or the orchestrator itself did
EXIT_USAGE = 2  # bad usage or configuration: nothing ran, nothing was written
EXIT_PUSH = 3  # the run finished but its commit could not be pushed
EXIT_LOCKED = 4  # another run holds this checkout's lock: nothing ran
EXIT_INTERRUPTED = 130  # SIGINT or SIGTERM, as a shell reports 128 + SIGINT


class FatalError(Exception):
    """An expected failure of usage, configuration or environment.

    The message names the file or option at fault; `cli.main` prints it as one
    line on stderr and exits with EXIT_USAGE.
    """
