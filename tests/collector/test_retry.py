"""Retry and backoff with an injected clock: the Collector's retry_on_failure semantics."""

from __future__ import annotations

import asyncio
import random
from typing import List, Optional

import pytest

from collector_processor.errors import PermanentError, RetryableError, ShutdownError
from collector_processor.sending.config import RetrySettings
from collector_processor.sending.retry import Backoff, send_with_retry


class FakeTime:
    """A clock that moves only when the retry loop sleeps; sleeps are recorded."""

    def __init__(self, stop_after_sleeps: int = -1) -> None:
        self.now = 0.0
        self.sleeps: List[float] = []
        self._stop_after = stop_after_sleeps

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float, stop: asyncio.Event) -> bool:
        self.sleeps.append(seconds)
        self.now += seconds
        if len(self.sleeps) == self._stop_after:
            stop.set()
            return True
        return False


class Flaky:
    """Fails ``failures`` times with ``error``, then succeeds."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error


class MidRng(random.Random):
    def random(self) -> float:
        return 0.5  # no jitter: the middle of the randomization window


def retry(
    attempt: Flaky, settings: RetrySettings, fake: FakeTime, stop: Optional[asyncio.Event] = None
) -> None:
    async def go() -> None:
        await send_with_retry(
            attempt,
            settings,
            stop or asyncio.Event(),
            clock=fake.clock,
            sleep=fake.sleep,
            rng=MidRng(),
        )

    asyncio.run(go())


def test_backoff_grows_by_the_multiplier_up_to_max_interval() -> None:
    backoff = Backoff(RetrySettings(), MidRng())
    assert [round(backoff.next_delay(), 4) for _ in range(7)] == [
        5.0,
        7.5,
        11.25,
        16.875,
        25.3125,
        30.0,
        30.0,
    ]


@pytest.mark.parametrize(("value", "expected"), [(0.0, 2.5), (0.999999, 7.5)])
def test_backoff_jitter_stays_inside_the_randomization_window(
    value: float, expected: float
) -> None:
    class FixedRng(random.Random):
        def random(self) -> float:
            return value

    assert Backoff(RetrySettings(), FixedRng()).next_delay() == pytest.approx(expected, abs=1e-4)


def test_retryable_errors_are_retried_until_success() -> None:
    fake = FakeTime()
    attempt = Flaky(3, RetryableError("unavailable"))
    retry(attempt, RetrySettings(), fake)
    assert attempt.calls == 4
    assert fake.sleeps == [5.0, 7.5, 11.25]


def test_permanent_errors_are_not_retried() -> None:
    fake = FakeTime()
    attempt = Flaky(1, PermanentError("bad request"))
    with pytest.raises(PermanentError):
        retry(attempt, RetrySettings(), fake)
    assert (attempt.calls, fake.sleeps) == (1, [])


def test_server_requested_delay_wins_when_longer() -> None:
    fake = FakeTime()
    retry(Flaky(2, RetryableError("slow down", delay_seconds=9.0)), RetrySettings(), fake)
    assert fake.sleeps == [9.0, 9.0]  # max(5, 9), max(7.5, 9)


def test_gives_up_when_the_next_attempt_would_pass_max_elapsed_time() -> None:
    fake = FakeTime()
    settings = RetrySettings(max_elapsed_time_seconds=30.0)
    attempt = Flaky(100, RetryableError("down"))
    with pytest.raises(RetryableError, match="no more retries left: down"):
        retry(attempt, settings, fake)
    # 5 + 7.5 + 11.25 = 23.75; the next wait (16.875) would end past 30 s.
    assert fake.sleeps == [5.0, 7.5, 11.25]
    assert attempt.calls == 4


def test_zero_max_elapsed_time_retries_forever() -> None:
    fake = FakeTime()
    attempt = Flaky(60, RetryableError("down"))
    retry(attempt, RetrySettings(max_elapsed_time_seconds=0.0), fake)
    assert attempt.calls == 61
    assert fake.now > 25 * 60  # far past the default five minutes


def test_shutdown_interrupts_the_wait() -> None:
    fake = FakeTime(stop_after_sleeps=2)
    attempt = Flaky(100, RetryableError("down"))
    with pytest.raises(ShutdownError, match="shutting down while waiting to retry"):
        retry(attempt, RetrySettings(), fake)
    assert attempt.calls == 2


def test_disabled_retry_makes_one_attempt() -> None:
    fake = FakeTime()
    attempt = Flaky(1, RetryableError("down"))
    with pytest.raises(RetryableError, match=r"^down$"):
        retry(attempt, RetrySettings(enabled=False), fake)
    assert (attempt.calls, fake.sleeps) == (1, [])
