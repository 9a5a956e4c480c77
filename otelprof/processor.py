"""Periodic collect -> build -> bounded queue -> export with retry, on one daemon worker thread."""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Deque, Dict, Optional

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value

from otelprof import _unpatched
from otelprof._threads import AgentThread, start_agent_thread
from otelprof.export.base import ExportStatus, ProfileExporter
from otelprof.export.retry import RetryPolicy

if TYPE_CHECKING:
    from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
        ExportProfilesServiceRequest,
    )

_logger = logging.getLogger("otelprof")

Collect = Callable[[], Optional["ExportProfilesServiceRequest"]]
"""Drains the samplers and returns the request to send (or None when there is nothing)."""


@dataclass
class _Pending:
    request: ExportProfilesServiceRequest
    first_attempt: Optional[float] = None
    next_attempt: float = 0.0
    attempts: int = 0


class _Throttle:
    """Logs the first occurrence of each message at once, then at most one summary a minute."""

    def __init__(self, clock: Callable[[], float], every_seconds: float = 60.0) -> None:
        self._clock = clock
        self._every = every_seconds
        self._seen: Dict[str, float] = {}
        self._suppressed: Dict[str, int] = collections.defaultdict(int)

    def warn(self, message: str, *args: object) -> None:
        now = self._clock()
        last = self._seen.get(message)
        if last is not None and now - last < self._every:
            self._suppressed[message] += 1
            return
        self._seen[message] = now
        suppressed = self._suppressed.pop(message, 0)
        suffix = f" ({suppressed} more since the last report)" if suppressed else ""
        _logger.warning("otelprof: " + message + suffix, *args)


class ExportProcessor:
    """Owns the worker thread, the bounded queue, retries and the shutdown deadline.

    ``collect`` runs every ``interval_seconds`` on the worker thread (never on the sampler's);
    requests wait in a queue of ``queue_size`` and the oldest is dropped, counted, when full.
    """

    def __init__(
        self,
        collect: Collect,
        exporter: ProfileExporter,
        interval_seconds: float,
        queue_size: int = 16,
        timeout_seconds: float = 10.0,
        retry_policy: Optional[RetryPolicy] = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.collect = collect
        self.exporter = exporter
        self.interval_seconds = interval_seconds
        self.timeout_seconds = timeout_seconds
        self.retry_policy = retry_policy or RetryPolicy()
        self._clock = clock
        self._queue: Deque[_Pending] = collections.deque()
        self._queue_size = queue_size
        self._throttle = _Throttle(clock)
        # The exporter thread waits on these: real locks, also under gevent (see _unpatched).
        self._wake = _unpatched.Event()
        self._stopping = _unpatched.Event()
        self._flush_requests: Deque[threading.Event] = collections.deque()
        self._thread: Optional[AgentThread] = None
        self._next_collect = clock() + interval_seconds
        self.dropped_requests = 0
        self.exported_requests = 0
        self.failed_requests = 0
        # Failed attempts since the last success: the first one of an outage is a warning (a
        # wrong endpoint must not go unnoticed for the minute before a profile is given up).
        self._failures_in_a_row = 0
        self._last_failure = ""

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stopping.clear()
            self._next_collect = self._clock() + self.interval_seconds
            self._thread = start_agent_thread("otelprof-exporter", self._run)

    def shutdown(self, timeout_seconds: float) -> None:
        """Collect one last time, send what is queued until the deadline, close the exporter."""
        deadline = self._clock() + timeout_seconds
        thread, self._thread = self._thread, None
        self._stopping.set()
        self._wake.set()
        if thread is not None and not thread.is_current():
            thread.join(max(0.0, deadline - self._clock()))
            if thread.is_alive():
                _logger.warning(
                    "otelprof: export did not finish within the %.1fs shutdown deadline; "
                    "%d request(s) not sent",
                    timeout_seconds,
                    len(self._queue),
                )
                return
        else:
            self._final_flush(deadline)
        self.exporter.shutdown()

    def force_flush(self, timeout_seconds: float = 10.0) -> bool:
        """Collect now and try to send everything queued; True if the queue emptied in time."""
        if self._thread is None or not self._thread.is_alive():
            return self._final_flush(self._clock() + timeout_seconds)
        # The caller waits on it: a patched (cooperative) Event under gevent keeps the caller's
        # other greenlets running meanwhile.
        done = threading.Event()
        self._flush_requests.append(done)
        self._wake.set()
        return done.wait(timeout_seconds) and not self._queue

    def reset_after_fork(self, exporter: ProfileExporter) -> None:
        """In a fork child: the parent's queue and thread are the parent's business."""
        self.exporter = exporter
        self._queue.clear()
        self._flush_requests.clear()
        self._wake = _unpatched.Event()
        self._stopping = _unpatched.Event()
        self._thread = None

    # -- the worker ------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            wait = self.step()
            self._wake.wait(wait)
            self._wake.clear()
        self._final_flush(self._clock() + self.timeout_seconds)

    def step(self) -> float:
        """Do whatever is due now; return the seconds until something else will be due."""
        now = self._clock()
        flushes = []
        while self._flush_requests:
            flushes.append(self._flush_requests.popleft())
        if flushes or now >= self._next_collect:
            self._collect_once()
            self._next_collect = now + self.interval_seconds
        self._send_due(now, drain=bool(flushes))
        for done in flushes:
            done.set()
        due = self._next_collect
        if self._queue:
            due = min(due, self._queue[0].next_attempt)
        return max(0.0, due - self._clock())

    def _collect_once(self) -> None:
        try:
            request = self.collect()
        except Exception:
            _logger.exception("otelprof: collecting the profile failed; this interval is lost")
            return
        if request is None:
            return
        dropped: Optional[_Pending] = None
        if len(self._queue) >= self._queue_size:
            dropped = self._queue.popleft()
            self.dropped_requests += 1
            self._throttle.warn(
                "export queue full (%d requests): dropped the oldest profile; %d dropped so far",
                self._queue_size,
                self.dropped_requests,
            )
        self._queue.append(_Pending(request))
        if dropped is not None and dropped.first_attempt is not None:
            # The endpoint is failing: the new head inherits the backoff, or a full queue
            # would turn every collection into an immediate retry.
            head = self._queue[0]
            head.next_attempt = max(head.next_attempt, dropped.next_attempt)
            head.attempts = max(head.attempts, dropped.attempts)

    def _send_due(self, now: float, drain: bool = False) -> None:
        """Send queued requests in order while they are due (all of them when draining)."""
        while self._queue and (drain or self._queue[0].next_attempt <= now):
            if self._attempt(self._queue[0]) is ExportStatus.RETRYABLE:
                return  # the endpoint is failing: keep the rest queued, in order
            self._queue.popleft()
            now = self._clock()

    def _attempt(
        self, pending: _Pending, timeout_seconds: Optional[float] = None, final: bool = False
    ) -> ExportStatus:
        """One export of ``pending``; ``final``: at shutdown, where a failure is not retried."""
        now = self._clock()
        if pending.first_attempt is None:
            pending.first_attempt = now
        pending.attempts += 1
        # Instrumented grpc/requests (opentelemetry-instrument with their instrumentations
        # installed) would otherwise trace every export as a span of the application's, with an
        # error event each time the endpoint is down: the SDK's own exporters do the same.
        token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            result = self.exporter.export(pending.request, timeout_seconds or self.timeout_seconds)
        except Exception as error:  # exporters should not raise; treat it as a failed attempt
            _logger.exception("otelprof: exporter raised; treating it as a permanent failure")
            self.failed_requests += 1
            self._throttle.warn("export failed permanently: %s", error)
            return ExportStatus.PERMANENT
        finally:
            detach(token)
        if result.status is ExportStatus.SUCCESS:
            self.exported_requests += 1
            if self._failures_in_a_row:
                _logger.info(
                    "otelprof: export recovered after %d failed attempt(s)", self._failures_in_a_row
                )
                self._failures_in_a_row = 0
            if result.message:
                self._throttle.warn("export partially rejected: %s", result.message)
            return result.status
        if result.status is ExportStatus.PERMANENT:
            self.failed_requests += 1
            self._throttle.warn("export refused, profile dropped: %s", result.message)
            return result.status
        self._failures_in_a_row += 1
        self._last_failure = result.message
        if final:  # no time is left to retry: the caller counts the profile as lost
            return ExportStatus.RETRYABLE
        elapsed = self._clock() - pending.first_attempt
        delay = self.retry_policy.next_delay_seconds(
            pending.attempts - 1, result.retry_after_seconds
        )
        if elapsed + delay > self.retry_policy.max_elapsed_seconds:
            self.failed_requests += 1
            self._throttle.warn(
                "export still failing after %d attempts (%s); profile dropped",
                pending.attempts,
                result.message,
            )
            return ExportStatus.PERMANENT
        pending.next_attempt = self._clock() + delay
        if self._failures_in_a_row == 1:
            _logger.warning(
                "otelprof: export failed, retrying with backoff for up to %.0fs "
                "(profiles stay queued, %d at most): %s",
                self.retry_policy.max_elapsed_seconds,
                self._queue_size,
                result.message,
            )
        else:
            _logger.debug("otelprof: export will be retried in %.1fs: %s", delay, result.message)
        return ExportStatus.RETRYABLE

    def _final_flush(self, deadline: float) -> bool:
        """One last collection, then one attempt per queued request while time remains; True
        if every request was delivered."""
        self._collect_once()
        delivered = True
        failed = 0
        while self._queue and self._clock() < deadline:
            remaining = min(self.timeout_seconds, deadline - self._clock())
            status = self._attempt(self._queue[0], max(remaining, 0.001), final=True)
            self._queue.popleft()
            delivered = delivered and status is ExportStatus.SUCCESS
            if status is ExportStatus.RETRYABLE:
                failed += 1
        if failed:
            # No time is left to retry: say what is lost, and why, in one line.
            self.failed_requests += failed
            _logger.warning(
                "otelprof: %d profile(s) not sent (the last attempt, at shutdown or flush): %s",
                failed,
                self._last_failure,
            )
        if self._queue:
            self.dropped_requests += len(self._queue)
            self._throttle.warn("%d profile(s) not sent before shutdown", len(self._queue))
            self._queue.clear()
            delivered = False
        return delivered
