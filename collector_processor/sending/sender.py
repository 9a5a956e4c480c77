"""One exporter behind its sending chain: queue -> consumers -> retry -> timeout -> push."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import List, Optional, Protocol

from collector_processor.errors import (
    PermanentError,
    RefusedError,
    RetryableError,
    ShutdownError,
    describe_exception,
)
from collector_processor.exporter.config import SendingSettings
from collector_processor.sending.queue import QueueItem, SendingQueue
from collector_processor.sending.retry import send_with_retry
from collector_processor.sending.timeout import with_timeout
from collector_processor.telemetry import Metrics

__all__ = ["Exporter", "ExporterSender"]

logger = logging.getLogger(__name__)

STORAGE_ERROR_PAUSE_SECONDS = 1.0


class Exporter(Protocol):
    """What an exporter implements: push one serialized request, classify failures.

    An exporter with ``enforces_timeout = True`` ends each attempt itself after
    ``timeout_seconds`` with a RetryableError; others are timed out by the sender.
    """

    async def start(self) -> None: ...

    async def export(self, payload: bytes) -> None:
        """Send one serialized ExportProfilesServiceRequest; raise Permanent/RetryableError."""

    async def shutdown(self) -> None: ...


class ExporterSender:
    """Owns the exporter's queue and consumer tasks; shutdown drains, then closes the exporter."""

    def __init__(
        self,
        exporter_id: str,
        exporter: Exporter,
        settings: SendingSettings,
        queue: Optional[SendingQueue],
        metrics: Metrics,
    ) -> None:
        self.id = exporter_id
        self.exporter = exporter
        self.settings = settings
        self.queue = queue
        self._stop = asyncio.Event()  # set at the drain deadline: abandon retries
        self._consumers: List[asyncio.Task[None]] = []
        self._started = False
        self._shut_down = False
        self._sent = metrics.counter(
            "exporter_sent_requests_total", "Requests the backend accepted."
        )
        self._failed = metrics.counter(
            "exporter_send_failed_requests_total",
            "Requests given up after a permanent error or exhausted retries.",
        )
        self._retries = metrics.counter("exporter_retries_total", "Retried export attempts.")
        self._enqueue_failed = metrics.counter(
            "exporter_enqueue_failed_requests_total", "Requests refused because the queue was full."
        )
        self._dropped = metrics.counter(
            "exporter_dropped_requests_total",
            "In-memory requests not sent by the shutdown deadline (queued, in flight or "
            "waiting to retry).",
        )
        if queue is not None:
            metrics.gauge(
                "exporter_queue_size",
                "Requests waiting in or being sent from the sending queue.",
                lambda: [({"exporter": self.id}, float(queue.size))],
            )
            metrics.gauge(
                "exporter_queue_capacity",
                "Configured sending_queue.queue_size.",
                lambda: [({"exporter": self.id}, float(queue.capacity))],
            )

    @property
    def queued(self) -> bool:
        return self.queue is not None

    async def start(self) -> None:
        await self.exporter.start()
        self._started = True
        if self.queue is not None:
            for index in range(self.settings.queue.num_consumers):
                task = asyncio.get_running_loop().create_task(
                    self._consume(), name=f"otelprof-exporter-{self.id}-{index}"
                )
                self._consumers.append(task)

    def full_error(self) -> Optional[RefusedError]:
        """The refusal a reservation would meet now (counted), without reserving."""
        if self.queue is None or self.queue.size < self.queue.capacity:
            return None
        self._enqueue_failed.inc(exporter=self.id)
        return RefusedError(f'sending queue of exporter "{self.id}" is full')

    def reserve(self) -> None:
        """Take a queue slot or refuse the request (retryable for the client)."""
        assert self.queue is not None
        if not self.queue.reserve():
            self._enqueue_failed.inc(exporter=self.id)
            raise RefusedError(f'sending queue of exporter "{self.id}" is full')

    def release(self) -> None:
        assert self.queue is not None
        self.queue.release()

    async def enqueue(self, payload: bytes) -> None:
        """Write a reserved request; returns once it is durable (persistent queue)."""
        assert self.queue is not None
        await self.queue.put(payload)

    async def send_now(self, payload: bytes) -> None:
        """No queue: the caller waits for the whole retry chain."""
        await self._send(payload)

    async def _send(self, payload: bytes) -> None:
        def on_retry(error: RetryableError, delay: float) -> None:
            self._retries.inc(exporter=self.id)
            logger.info(
                'exporter "%s": export failed, retrying in %.2fs: %s', self.id, delay, error
            )

        async def attempt() -> None:
            if getattr(self.exporter, "enforces_timeout", False):
                await self.exporter.export(payload)  # its own deadline: no timer task here
            else:
                await with_timeout(self.exporter.export(payload), self.settings.timeout_seconds)

        try:
            await send_with_retry(attempt, self.settings.retry, self._stop, on_retry=on_retry)
        except (PermanentError, RetryableError) as exc:
            self._failed.inc(exporter=self.id)
            logger.error('exporter "%s": dropping request: %s', self.id, exc)
            raise
        self._sent.inc(exporter=self.id)

    async def _consume(self) -> None:
        assert self.queue is not None
        while True:
            try:
                item = await self.queue.get()
            except Exception:
                # Storage trouble: the item stays on disk for the next start; keep consuming.
                logger.exception('exporter "%s": cannot read from the queue', self.id)
                await asyncio.sleep(STORAGE_ERROR_PAUSE_SECONDS)
                continue
            if item is None:
                return
            await self._deliver(item)

    async def _deliver(self, item: QueueItem) -> None:
        assert self.queue is not None
        try:
            await self._send(item.payload)
        except (PermanentError, RetryableError):
            pass  # counted and logged in _send; the item is done with
        except (ShutdownError, asyncio.CancelledError):
            # Not acknowledged: still counted in the queue's size, which shutdown reports (a
            # persistent item is delivered again after restart).
            raise
        except Exception as exc:  # never let a bug kill a consumer silently
            logger.error(
                'exporter "%s": unexpected error, dropping request: %s',
                self.id,
                describe_exception(exc),
            )
            self._failed.inc(exporter=self.id)
        try:
            await self.queue.ack(item)
        except Exception:  # the row stays: sent again after a restart (at-least-once)
            logger.exception('exporter "%s": cannot remove a sent request from the queue', self.id)

    async def shutdown(self, deadline: float) -> None:
        """Drain the queue until ``deadline`` (``time.monotonic``), then stop and close."""
        if self._shut_down:
            return
        self._shut_down = True
        if self.queue is not None:
            self.queue.close()
        if self._consumers:
            remaining = max(deadline - time.monotonic(), 0.0)
            _, pending = await asyncio.wait(self._consumers, timeout=remaining)
            if pending:
                self._stop.set()
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
            # Every request still holding a slot: waiting, and also those a consumer held when
            # it stopped (being sent, waiting to retry), which pending() leaves out.
            left = self.queue.size if self.queue is not None else 0
            if left:
                durable = self.queue is not None and self.queue.durable
                if not durable:
                    self._dropped.inc(left, exporter=self.id)
                logger.warning(
                    'exporter "%s": %d request(s) not sent before the shutdown deadline%s',
                    self.id,
                    left,
                    " (kept on disk for the next start)" if durable else " (dropped)",
                )
        self._stop.set()
        if self._started:
            await self.exporter.shutdown()
