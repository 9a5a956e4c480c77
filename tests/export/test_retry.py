"""Retry policy arithmetic and send_with_retry, with an injected clock, random and event."""

from __future__ import annotations

import threading
from typing import List, Optional

import pytest

from otelprof.export.base import ExportResult, ExportStatus
from otelprof.export.memory import InMemoryProfileExporter
from otelprof.export.retry import RetryPolicy, send_with_retry

from .servers import make_request

BUSY = ExportResult(ExportStatus.RETRYABLE, "busy")
NO_JITTER = 0.5  # random() == 0.5 puts the jitter at zero


class FakeTime:
    """A clock plus an event whose wait() advances the clock instead of sleeping."""

    def __init__(self, stop_at_wait: Optional[int] = None) -> None:
        self.now = 100.0
        self.waits: List[float] = []
        self._stop_at_wait = stop_at_wait

    def clock(self) -> float:
        return self.now

    def wait(self, timeout: Optional[float] = None) -> bool:
        assert timeout is not None
        if self._stop_at_wait is not None and len(self.waits) >= self._stop_at_wait:
            return True  # the stop event is set
        self.waits.append(timeout)
        self.now += timeout
        return False


def test_defaults_are_pinned() -> None:
    assert RetryPolicy() == RetryPolicy(
        initial_interval_seconds=1.0,
        max_interval_seconds=30.0,
        multiplier=1.5,
        randomization_factor=0.5,
        max_elapsed_seconds=60.0,
    )


def test_backoff_grows_by_the_multiplier_up_to_the_cap() -> None:
    policy = RetryPolicy()
    assert [policy.backoff_seconds(n) for n in range(4)] == [1.0, 1.5, 2.25, 3.375]
    assert policy.backoff_seconds(20) == 30.0
    assert policy.backoff_seconds(100_000) == 30.0  # no overflow


def test_jitter_spreads_by_the_randomization_factor() -> None:
    policy = RetryPolicy(initial_interval_seconds=2.0)
    assert policy.next_delay_seconds(0, random=lambda: 0.0) == 1.0  # 2 * (1 - 0.5)
    assert policy.next_delay_seconds(0, random=lambda: NO_JITTER) == 2.0
    assert policy.next_delay_seconds(0, random=lambda: 0.75) == 2.5
    assert RetryPolicy(randomization_factor=0).next_delay_seconds(1, random=lambda: 0.0) == 1.5


def test_server_delay_wins_only_when_longer() -> None:
    policy = RetryPolicy()
    assert policy.next_delay_seconds(0, server_delay_seconds=7.0, random=lambda: NO_JITTER) == 7.0
    assert policy.next_delay_seconds(3, server_delay_seconds=0.1, random=lambda: NO_JITTER) == 3.375


@pytest.mark.parametrize(
    "settings",
    [
        {"initial_interval_seconds": 0.0},
        {"max_interval_seconds": 0.5},
        {"multiplier": 0.9},
        {"randomization_factor": 1.5},
        {"max_elapsed_seconds": -1.0},
        {"max_elapsed_seconds": float("nan")},
    ],
)
def test_bad_policy_values_are_refused(settings: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(settings))):
        RetryPolicy(**settings)


def run(
    exporter: InMemoryProfileExporter,
    policy: RetryPolicy,
    fake: FakeTime,
) -> ExportResult:
    return send_with_retry(
        exporter,
        make_request(),
        policy,
        fake,
        clock=fake.clock,
        timeout_seconds=3.0,
        random=lambda: NO_JITTER,
    )


def test_success_needs_no_retry() -> None:
    exporter, fake = InMemoryProfileExporter(), FakeTime()
    assert run(exporter, RetryPolicy(), fake).ok
    assert exporter.attempts == 1
    assert fake.waits == []


def test_retryable_failures_are_retried_with_backoff() -> None:
    exporter, fake = InMemoryProfileExporter(), FakeTime()
    exporter.set_results([BUSY, BUSY])

    result = run(exporter, RetryPolicy(), fake)

    assert result.ok
    assert exporter.attempts == 3
    assert fake.waits == [1.0, 1.5]
    assert len(exporter.get_finished_requests()) == 1


def test_permanent_failure_is_not_retried() -> None:
    exporter, fake = InMemoryProfileExporter(), FakeTime()
    refused = ExportResult(ExportStatus.PERMANENT, "bad request")
    exporter.set_results([refused])

    assert run(exporter, RetryPolicy(), fake) == refused
    assert exporter.attempts == 1
    assert fake.waits == []


def test_server_delay_is_honoured() -> None:
    exporter, fake = InMemoryProfileExporter(), FakeTime()
    exporter.set_results([ExportResult(ExportStatus.RETRYABLE, "slow down", 5.0)])

    assert run(exporter, RetryPolicy(), fake).ok
    assert fake.waits == [5.0]


def test_gives_up_before_waiting_past_max_elapsed() -> None:
    exporter, fake = InMemoryProfileExporter(), FakeTime()
    exporter.set_results([BUSY] * 10)
    policy = RetryPolicy(
        initial_interval_seconds=1.0,
        multiplier=2.0,
        randomization_factor=0.0,
        max_elapsed_seconds=10.0,
    )

    result = run(exporter, policy, fake)

    # Waits 1, 2, 4 (7 s elapsed); the next wait of 8 would end at 15 s > 10 s.
    assert fake.waits == [1.0, 2.0, 4.0]
    assert exporter.attempts == 4
    assert result.status is ExportStatus.RETRYABLE
    assert result.message.startswith("busy (gave up after 4 attempt(s) in 7.0s")


def test_server_delay_beyond_max_elapsed_gives_up_at_once() -> None:
    exporter, fake = InMemoryProfileExporter(), FakeTime()
    exporter.set_results([ExportResult(ExportStatus.RETRYABLE, "come back in an hour", 3600.0)])

    result = run(exporter, RetryPolicy(), fake)

    assert result.status is ExportStatus.RETRYABLE
    assert fake.waits == []
    assert exporter.attempts == 1


def test_set_stop_event_ends_retrying() -> None:
    exporter, fake = InMemoryProfileExporter(), FakeTime(stop_at_wait=1)
    exporter.set_results([BUSY] * 5)

    result = run(exporter, RetryPolicy(), fake)

    assert exporter.attempts == 2  # the first try and one retry, then the stop event was set
    assert result.status is ExportStatus.RETRYABLE
    assert "shutting down" in result.message


def test_stop_event_interrupts_a_long_wait() -> None:
    """A real Event set from another thread wakes a retry wait of an hour."""
    attempted = threading.Event()

    class AlwaysBusy:
        def export(self, request: object, timeout_seconds: float) -> ExportResult:
            attempted.set()
            return BUSY

        def shutdown(self) -> None:
            pass

    stop = threading.Event()
    policy = RetryPolicy(
        initial_interval_seconds=3600.0, max_interval_seconds=3600.0, max_elapsed_seconds=86400.0
    )
    results: List[ExportResult] = []
    worker = threading.Thread(
        target=lambda: results.append(send_with_retry(AlwaysBusy(), make_request(), policy, stop))
    )
    worker.start()
    try:
        assert attempted.wait(30)
        stop.set()
        worker.join(30)
        assert not worker.is_alive()
    finally:
        stop.set()
        worker.join()
    assert results[0].status is ExportStatus.RETRYABLE
    assert "shutting down" in results[0].message


def test_each_attempt_gets_the_timeout_and_a_raising_exporter_is_contained() -> None:
    timeouts: List[float] = []

    class Broken:
        def export(self, request: object, timeout_seconds: float) -> ExportResult:
            timeouts.append(timeout_seconds)
            raise RuntimeError("boom")

        def shutdown(self) -> None:
            pass

    fake = FakeTime()
    result = send_with_retry(
        Broken(), make_request(), RetryPolicy(), fake, clock=fake.clock, timeout_seconds=3.0
    )

    assert result.status is ExportStatus.PERMANENT
    assert "boom" in result.message
    assert timeouts == [3.0]
