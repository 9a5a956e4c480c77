"""Retry policy: exponential backoff with jitter, server delays honoured, a cap on elapsed time."""

from __future__ import annotations

import dataclasses
import math
import random as _random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional, Protocol

from otelprof.export.base import ExportResult, ExportStatus

if TYPE_CHECKING:
    from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
        ExportProfilesServiceRequest,
    )

    from otelprof.export.base import ProfileExporter


class Waiter(Protocol):
    """What ``send_with_retry`` sleeps on: a ``threading.Event`` (set = stop retrying)."""

    def wait(self, timeout: Optional[float] = None) -> bool: ...


@dataclass(frozen=True)
class RetryPolicy:
    """When to try a RETRYABLE request again (the Collector's ``retry_on_failure`` settings).

    The n-th retry waits ``initial * multiplier**n`` seconds, capped at ``max_interval``, spread
    by ``±randomization_factor`` so many agents do not retry in lockstep, and never less than
    the delay the server asked for. No retry starts past ``max_elapsed`` after the first try.
    """

    initial_interval_seconds: float = 1.0
    max_interval_seconds: float = 30.0
    multiplier: float = 1.5
    randomization_factor: float = 0.5
    max_elapsed_seconds: float = 60.0

    def __post_init__(self) -> None:
        checks = (
            ("initial_interval_seconds", self.initial_interval_seconds > 0),
            ("max_interval_seconds", self.max_interval_seconds >= self.initial_interval_seconds),
            ("multiplier", self.multiplier >= 1),
            ("randomization_factor", 0 <= self.randomization_factor <= 1),
            ("max_elapsed_seconds", self.max_elapsed_seconds >= 0),
        )
        for name, ok in checks:
            value = getattr(self, name)
            if not ok or not math.isfinite(value):
                raise ValueError(f"RetryPolicy.{name} is out of range: {value!r}")

    def backoff_seconds(self, retry_number: int) -> float:
        """The wait before retry ``retry_number`` (0 = the first retry), before jitter."""
        try:
            interval = self.initial_interval_seconds * self.multiplier ** max(retry_number, 0)
        except OverflowError:
            interval = math.inf
        return min(interval, self.max_interval_seconds)

    def next_delay_seconds(
        self,
        retry_number: int,
        server_delay_seconds: Optional[float] = None,
        random: Callable[[], float] = _random.random,
    ) -> float:
        """The jittered backoff, or the server's delay when that is longer.

        ``random`` returns a float in ``[0, 1)``; 0.5 means no jitter.
        """
        backoff = self.backoff_seconds(retry_number)
        spread = self.randomization_factor * (2.0 * random() - 1.0)
        delay = backoff * (1.0 + spread)
        if server_delay_seconds is not None:
            delay = max(delay, server_delay_seconds)
        return delay


def send_with_retry(
    exporter: ProfileExporter,
    request: ExportProfilesServiceRequest,
    policy: RetryPolicy,
    stop_event: Waiter,
    *,
    clock: Callable[[], float] = time.monotonic,
    timeout_seconds: float = 10.0,
    random: Callable[[], float] = _random.random,
) -> ExportResult:
    """Export ``request``, retrying RETRYABLE outcomes as ``policy`` says; return the last result.

    Waits with ``stop_event.wait(delay)``, so setting the event (shutdown) ends the waiting at
    once: the request gets the attempt in progress and no more. Gives up, without waiting, when
    the next retry would start past ``policy.max_elapsed_seconds``. Never raises.
    """
    start = clock()
    retry_number = 0
    while True:
        try:
            result = exporter.export(request, timeout_seconds)
        except Exception as error:  # the contract says exporters never raise; hold to it here too
            result = ExportResult(ExportStatus.PERMANENT, f"exporter raised {error!r}")
        if result.status is not ExportStatus.RETRYABLE:
            return result
        attempts = retry_number + 1
        delay = policy.next_delay_seconds(retry_number, result.retry_after_seconds, random)
        elapsed = clock() - start
        if elapsed + delay > policy.max_elapsed_seconds:
            return _annotate(
                result, f"gave up after {attempts} attempt(s) in {max(elapsed, 0.0):.1f}s"
            )
        if stop_event.wait(delay):
            return _annotate(result, f"not retried after {attempts} attempt(s): shutting down")
        retry_number += 1


def _annotate(result: ExportResult, note: str) -> ExportResult:
    message = f"{result.message} ({note})" if result.message else note
    return dataclasses.replace(result, message=message)
