"""Whether a failed attempt at a module is tried again, after how long, and why.

One policy for both engines: the runner's retry loop asks it after every
failed attempt, and Airflow's tasks ask it whether a failure may be retried.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Literal, NamedTuple

Backoff = Literal["fixed", "exponential"]
BACKOFFS: tuple[Backoff, ...] = ("fixed", "exponential")
# sysexits.h: "temporary failure, indicating something that is not really an
# error ... the user is invited to retry the operation later".
EX_TEMPFAIL = 75
# An exponential delay is spread over its last quarter, so that runs that failed
# together (one outage) do not all retry in the same second.
JITTER = 0.25


class Policy(NamedTuple):
    """A module's retry settings (docs/when-a-run-fails.md, retries)."""

    retries: int = 0
    delay_seconds: float = 0.0
    on_exit_codes: tuple[int, ...] | None = None  # None: every failure is retried
    backoff: Backoff = "fixed"
    max_delay_seconds: float = 3600.0


class Decision(NamedTuple):
    retry: bool
    delay_seconds: float
    why: str  # for the log line: why it retries, or why not


def failure_code(exit_code: int | None, timed_out: bool) -> int | None:
    """The exit code that a failure is retried by, or None when there is none
    (a timeout, a signal, a module that could not start)."""
    if timed_out or exit_code is None or exit_code < 0:
        return None
    return exit_code


def retryable(policy: Policy, exit_code: int | None, timed_out: bool = False) -> tuple[bool, str]:
    """Whether a failure of this kind may be retried at all, and why (or why not)."""
    code = failure_code(exit_code, timed_out)
    what = _kind(code, exit_code, timed_out)
    if policy.on_exit_codes is None:
        return True, f"{what}: no retry_on_exit_codes, every failure is retried"
    listed = "[" + ", ".join(str(c) for c in policy.on_exit_codes) + "]"
    if code is not None and code in policy.on_exit_codes:
        return True, f"{what} is in retry_on_exit_codes {listed}"
    return False, f"{what} is not in retry_on_exit_codes {listed}"


def _kind(code: int | None, exit_code: int | None, timed_out: bool) -> str:
    if timed_out:
        return "a timeout"
    if exit_code is not None and exit_code < 0:
        return f"a kill by signal {-exit_code}"
    if code is None:
        return "a failure to start"
    return f"exit code {code}" + (" (EX_TEMPFAIL: try again later)" if code == EX_TEMPFAIL else "")


def delay(policy: Policy, attempt: int, rand: Callable[[], float] = random.random) -> float:
    """The wait before attempt `attempt + 1`, after `attempt` failed ones.

    "exponential" doubles `retry_delay_seconds` with each attempt up to
    `retry_max_delay_seconds`, then takes off up to a quarter at random.
    """
    if policy.backoff == "fixed":
        return policy.delay_seconds
    full = min(policy.max_delay_seconds, policy.delay_seconds * 2.0 ** min(attempt - 1, 64))
    return round(full * (1.0 - JITTER * rand()), 3)


def decide(policy: Policy, attempt: int, exit_code: int | None, timed_out: bool = False,
           rand: Callable[[], float] = random.random) -> Decision:
    """After failed attempt number `attempt`: try again?, after how long, and why."""
    allowed, why = retryable(policy, exit_code, timed_out)
    if not allowed:
        return Decision(False, 0.0, f"not retried: {why}")
    if attempt > policy.retries:
        tries = "retries is 0" if not policy.retries else f"all {policy.retries} retries used"
        return Decision(False, 0.0, f"not retried: {tries}")
    wait = delay(policy, attempt, rand)
    how = f"{policy.backoff} backoff, " if policy.backoff == "exponential" else ""
    return Decision(True, wait, f"retrying in {wait:g} s (retry {attempt} of {policy.retries}; "
                                f"{how}{why})")
