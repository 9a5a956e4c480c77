"""Retry with exponential backoff and jitter, as the Collector's ``retry_on_failure``.

Permanent errors end at once. A retryable error waits ``max(backoff, delay the server asked
for)``; the request is given up when the next attempt would start after ``max_elapsed_time``
(never, when it is 0). Waiting ends early on shutdown with :class:`ShutdownError`, so a
durable item stays queued for the next start instead of being counted as failed.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Awaitable, Callable, Optional

from collector_processor.errors import PermanentError, RetryableError, ShutdownError
from collector_processor.sending.config import RetrySettings

__all__ = ["Backoff", "send_with_retry", "sleep_unless_stopped"]

Attempt = Callable[[], Awaitable[None]]
Sleeper = Callable[[float, asyncio.Event], Awaitable[bool]]
OnRetry = Callable[[RetryableError, float], None]


class Backoff:
    """The backoff sequence of cenkalti/backoff's ExponentialBackOff (used by the Collector)."""

    def __init__(self, settings: RetrySettings, rng: Optional[random.Random] = None) -> None:
        self._settings = settings
        self._rng = rng or random.Random()
        self._current = settings.initial_interval_seconds

    def next_delay(self) -> float:
        current = self._current
        spread = self._settings.randomization_factor * current
        delay = current - spread + self._rng.random() * 2 * spread
        if current >= self._settings.max_interval_seconds / max(self._settings.multiplier, 1e-9):
            self._current = self._settings.max_interval_seconds
        else:
            self._current = current * self._settings.multiplier
        return delay


async def sleep_unless_stopped(seconds: float, stop: asyncio.Event) -> bool:
    """Sleep ``seconds``; return True if ``stop`` was set first."""
    if stop.is_set():
        return True
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(seconds, 0.0))
    except asyncio.TimeoutError:
        return False
    return True


async def send_with_retry(
    attempt: Attempt,
    settings: RetrySettings,
    stop: asyncio.Event,
    *,
    on_retry: Optional[OnRetry] = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Sleeper = sleep_unless_stopped,
    rng: Optional[random.Random] = None,
) -> None:
    """Run ``attempt`` until it succeeds; raise the error that ended the retries."""
    if not settings.enabled:
        await attempt()
        return
    backoff: Optional[Backoff] = None  # made at the first failure: most sends never retry
    deadline = (
        clock() + settings.max_elapsed_time_seconds if settings.max_elapsed_time_seconds else None
    )
    while True:
        if stop.is_set():
            raise ShutdownError("shutting down before the request was sent")
        try:
            await attempt()
            return
        except PermanentError:
            raise
        except RetryableError as exc:
            if backoff is None:
                backoff = Backoff(settings, rng)
            delay = backoff.next_delay()
            if exc.delay_seconds is not None:
                delay = max(delay, exc.delay_seconds)
            if deadline is not None and clock() + delay > deadline:
                raise RetryableError(f"no more retries left: {exc}") from exc
            if on_retry is not None:
                on_retry(exc, delay)
            if await sleep(delay, stop):
                raise ShutdownError(f"shutting down while waiting to retry: {exc}") from exc
