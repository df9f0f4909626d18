"""Failure policies: the retry schedule, what is retried, and which setting wins."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from riverbed import OnError, Retry
from riverbed._model.policy import NO_RETRY, Policy, resolve


def test_on_error_members() -> None:
    """The actions are stop, skip, continue and dead_letter, with those string values."""
    assert {member.value for member in OnError} == {"stop", "skip", "continue", "dead_letter"}
    assert OnError("dead_letter") is OnError.DEAD_LETTER


def test_retry_defaults() -> None:
    """By default: three attempts, 0.1 s doubling up to 30 s, with jitter, on Exception."""
    retry = Retry()
    assert (retry.attempts, retry.backoff, retry.multiplier, retry.max_backoff) == (
        3,
        0.1,
        2.0,
        30.0,
    )
    assert retry.jitter is True
    assert retry.on == (Exception,)


def test_retry_is_frozen() -> None:
    """A Retry cannot be changed once made."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        Retry().attempts = 5  # type: ignore[misc]


@pytest.mark.parametrize("attempts", [0, -1, 1.5, "3", None])
def test_attempts_must_be_a_positive_int(attempts: Any) -> None:
    """``attempts`` counts calls, so it is an int of at least one."""
    with pytest.raises(ValueError, match="attempts must be an int >= 1"):
        Retry(attempts=attempts)


@pytest.mark.parametrize("kwargs", [{"backoff": -0.1}, {"max_backoff": -1}])
def test_backoff_must_not_be_negative(kwargs: dict[str, float]) -> None:
    """Negative waits are refused."""
    with pytest.raises(ValueError, match="must be >= 0 seconds"):
        Retry(**kwargs)  # type: ignore[arg-type]


def test_multiplier_must_not_shrink_delays() -> None:
    """A multiplier below one is refused."""
    with pytest.raises(ValueError, match="multiplier"):
        Retry(multiplier=0.5)


@pytest.mark.parametrize("on", ["ValueError", (ValueError, 3), int])
def test_on_takes_exception_classes(on: Any) -> None:
    """``on`` must hold exception classes only."""
    with pytest.raises(TypeError, match="is not an exception class"):
        Retry(on=on)


def test_a_single_exception_class_becomes_a_tuple() -> None:
    """``Retry(on=ValueError)`` is kept as ``(ValueError,)``."""
    assert Retry(on=ValueError).on == (ValueError,)  # type: ignore[arg-type]


def test_retryable_follows_the_exception_types() -> None:
    """Only instances (subclasses included) of ``on`` are retried."""
    retry = Retry(on=(LookupError,))
    assert retry.retryable(KeyError("k"))
    assert retry.retryable(LookupError())
    assert not retry.retryable(ValueError())


def test_default_does_not_retry_interrupts() -> None:
    """By default, KeyboardInterrupt and SystemExit are not retried."""
    retry = Retry()
    assert not retry.retryable(KeyboardInterrupt())
    assert not retry.retryable(SystemExit())


def test_delays_without_jitter() -> None:
    """Without jitter, delays are backoff * multiplier**(attempt-1), capped."""
    retry = Retry(attempts=10, backoff=0.5, multiplier=3, max_backoff=10, jitter=False)
    rng = random.Random(0)
    assert [retry.delay(n, rng) for n in range(1, 6)] == [0.5, 1.5, 4.5, 10, 10]


@given(
    st.floats(min_value=0, max_value=100),
    st.floats(min_value=1, max_value=10),
    st.floats(min_value=0, max_value=1000),
    st.integers(min_value=1, max_value=60),
    st.integers(min_value=0, max_value=2**32),
)
def test_jittered_delay_is_between_half_and_full(
    backoff: float, multiplier: float, max_backoff: float, attempt: int, seed: int
) -> None:
    """With jitter, each delay lies in [base/2, base], base being the capped delay."""
    plain = Retry(backoff=backoff, multiplier=multiplier, max_backoff=max_backoff, jitter=False)
    jittered = dataclasses.replace(plain, jitter=True)
    base = plain.delay(attempt, random.Random(seed))
    assert 0 <= base <= max_backoff
    delay = jittered.delay(attempt, random.Random(seed))
    assert base / 2 <= delay <= base


def test_jitter_is_reproducible_with_a_seeded_rng() -> None:
    """The same seed gives the same jittered schedule."""
    retry = Retry(attempts=5)
    first = [retry.delay(n, random.Random(7)) for n in range(1, 5)]
    assert first == [retry.delay(n, random.Random(7)) for n in range(1, 5)]


def test_to_json() -> None:
    """``to_json`` writes every field, exception types by import reference."""
    retry = Retry(attempts=4, backoff=0.2, on=(ValueError, KeyError))
    assert retry.to_json() == {
        "attempts": 4,
        "backoff": 0.2,
        "multiplier": 2.0,
        "max_backoff": 30.0,
        "jitter": True,
        "on": ["builtins:ValueError", "builtins:KeyError"],
    }


def test_no_retry_means_one_attempt() -> None:
    """The default retry policy calls once."""
    assert NO_RETRY.attempts == 1


def test_resolve_defaults() -> None:
    """With nothing set: STOP, one attempt, no timeout."""
    assert resolve(None, None, None, None, None) == Policy(OnError.STOP, NO_RETRY, None)


def test_resolve_flow_setting_fills_in() -> None:
    """The flow's settings apply to stages that set none."""
    retry = Retry(attempts=5)
    assert resolve(None, None, OnError.SKIP, retry, None) == Policy(OnError.SKIP, retry, None)


def test_resolve_stage_setting_wins() -> None:
    """A stage's own settings beat the flow's, each independently."""
    stage_retry, flow_retry = Retry(attempts=2), Retry(attempts=9)
    policy = resolve(OnError.CONTINUE, None, OnError.SKIP, flow_retry, 1.5)
    assert policy == Policy(OnError.CONTINUE, flow_retry, 1.5)
    policy = resolve(None, stage_retry, OnError.DEAD_LETTER, flow_retry, None)
    assert policy == Policy(OnError.DEAD_LETTER, stage_retry, None)
