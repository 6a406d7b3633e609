"""The retry policy: which failures are tried again, after how long, and why."""

from __future__ import annotations

import pytest

from gitcron import retry
from gitcron.retry import Policy


def test_unset_codes_retry_every_failure_as_before() -> None:
    policy = Policy(retries=2, delay_seconds=3)
    for exit_code, timed_out in ((1, False), (75, False), (-9, False), (None, True)):
        decision = retry.decide(policy, 1, exit_code, timed_out)
        assert decision.retry and decision.delay_seconds == 3
    assert "every failure is retried" in retry.decide(policy, 1, 1).why


def test_only_the_listed_codes_are_retried_and_the_line_says_why() -> None:
    policy = Policy(retries=3, delay_seconds=1, on_exit_codes=(75, 69))
    yes = retry.decide(policy, 1, 75)
    assert yes.retry
    assert yes.why == ("retrying in 1 s (retry 1 of 3; exit code 75 (EX_TEMPFAIL: try again "
                       "later) is in retry_on_exit_codes [75, 69])")
    no = retry.decide(policy, 1, 1)
    assert not no.retry
    assert no.why == "not retried: exit code 1 is not in retry_on_exit_codes [75, 69]"
    assert retry.decide(policy, 1, None, timed_out=True).why == (
        "not retried: a timeout is not in retry_on_exit_codes [75, 69]")
    assert retry.decide(policy, 1, -9).why == (
        "not retried: a kill by signal 9 is not in retry_on_exit_codes [75, 69]")


def test_an_empty_list_retries_nothing() -> None:
    assert not retry.decide(Policy(retries=5, on_exit_codes=()), 1, 75).retry


def test_retries_run_out() -> None:
    policy = Policy(retries=2, on_exit_codes=(75,))
    assert [retry.decide(policy, n, 75).retry for n in (1, 2, 3)] == [True, True, False]
    assert retry.decide(policy, 3, 75).why == "not retried: all 2 retries used"
    assert retry.decide(Policy(), 1, 75).why == "not retried: retries is 0"


def test_exponential_doubles_up_to_the_cap_with_jitter_below_it() -> None:
    policy = Policy(retries=10, delay_seconds=2, backoff="exponential", max_delay_seconds=20)
    most = [retry.delay(policy, n, rand=lambda: 0.0) for n in range(1, 7)]
    assert most == [2, 4, 8, 16, 20, 20]
    least = [retry.delay(policy, n, rand=lambda: 1.0) for n in range(1, 7)]
    assert least == [1.5, 3, 6, 12, 15, 15]
    decision = retry.decide(policy, 3, 1, rand=lambda: 0.0)
    assert decision.why.startswith("retrying in 8 s (retry 3 of 10; exponential backoff, ")


def test_a_hundred_doublings_stay_at_the_cap() -> None:
    policy = Policy(retries=100, delay_seconds=600, backoff="exponential", max_delay_seconds=3600)
    assert retry.delay(policy, 100, rand=lambda: 0.0) == 3600


@pytest.mark.parametrize("attempt", [1, 5])
def test_fixed_backoff_has_no_jitter(attempt: int) -> None:
    assert retry.delay(Policy(delay_seconds=7), attempt, rand=lambda: 1.0) == 7
