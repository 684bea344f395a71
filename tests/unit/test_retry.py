"""The retry policy: backoff with jitter, Retry-After, and the event-age bound."""

from __future__ import annotations

import random

from tiktok_gateway.retry import RetryPolicy

NOW = 1_800_000_000.0


def test_backoff_grows_exponentially_within_jitter() -> None:
    """The n-th delay lies between half and all of base * 2**(n-1), capped."""
    policy = RetryPolicy(base=1, cap=60)
    rng = random.Random(7)
    for attempts, ceiling in [(1, 1), (2, 2), (3, 4), (6, 32), (10, 60)]:
        delay = policy.delay(attempts, rng)
        assert ceiling / 2 <= delay <= ceiling


def test_jitter_spreads_retries() -> None:
    """Two workers failing together do not retry at the same instant."""
    policy = RetryPolicy(base=10)
    delays = {round(policy.delay(3, random.Random(seed)), 3) for seed in range(20)}
    assert len(delays) > 10


def test_retry_after_is_honoured() -> None:
    """TikTok's Retry-After is a floor on the delay."""
    decision = RetryPolicy(base=1).decide(1, NOW, NOW, retry_after=30)
    assert decision.retry_at is not None and decision.retry_at >= NOW + 30


def test_gives_up_when_the_event_would_be_too_old() -> None:
    """An event whose next attempt would land past TikTok's age limit is dead-lettered."""
    policy = RetryPolicy(base=100, max_event_age=3600)
    assert not policy.decide(1, NOW - 60, NOW).give_up
    decision = policy.decide(1, NOW - 3590, NOW)
    assert decision.give_up and "too old" in decision.reason


def test_max_attempts() -> None:
    """With max_attempts set, the policy gives up after that many failures."""
    policy = RetryPolicy(max_attempts=3)
    assert not policy.decide(2, NOW, NOW).give_up
    assert policy.decide(3, NOW, NOW).give_up


def test_every_answer_kind_has_one_action() -> None:
    """Retry (pausing the token on a rate limit), split a payload problem, dead-letter auth."""
    from tiktok_gateway.retry import Action
    from tiktok_gateway.tiktok.codes import Answer, answer_for_code, answer_for_status

    policy = RetryPolicy(rate_limit_pause=7)
    limited = policy.after_failure(Answer.RATE_LIMITED, batch_size=10)
    assert (limited.action, limited.pause) == (Action.RETRY, 7)
    assert policy.after_failure(Answer.RATE_LIMITED, batch_size=1, retry_after=30).pause == 30
    assert policy.after_failure(Answer.RETRY_LATER, batch_size=10).action is Action.RETRY
    assert policy.after_failure(Answer.BAD_REQUEST, batch_size=10).action is Action.SPLIT
    assert policy.after_failure(Answer.BAD_REQUEST, batch_size=1).action is Action.DEAD_LETTER
    assert policy.after_failure(Answer.AUTH, batch_size=10).action is Action.DEAD_LETTER
    assert [answer_for_code(c) for c in (0, 20001, 40001, 40002, 40100, 40105, 50002)] == [
        Answer.SUCCESS, Answer.PARTIAL, Answer.AUTH, Answer.BAD_REQUEST, Answer.RATE_LIMITED,
        Answer.AUTH, Answer.RETRY_LATER]
    assert answer_for_status(502, json_body=False) is Answer.RETRY_LATER
    assert answer_for_status(200, json_body=False) is Answer.RETRY_LATER
    assert answer_for_status(403, json_body=False) is Answer.RETRY_LATER  # a CDN, not TikTok
    assert answer_for_status(200, json_body=True) is None


def test_backoff_never_overflows_and_retry_after_is_capped() -> None:
    """After thousands of failures the delay is still the cap; a Retry-After past the cap
    (1e308, NaN, negative) is believed only up to it."""
    policy = RetryPolicy(base=1, cap=300, max_retry_after=120, max_event_age=10**9)
    assert policy.delay(5000) <= 300
    decision = policy.decide(5000, NOW, NOW, retry_after=1e308)
    assert decision.retry_at is not None and decision.retry_at <= NOW + 300
    assert [policy.believed(v) for v in (1e308, float("nan"), -5, None, 30)] == [120, 0, 0, 0, 30]
