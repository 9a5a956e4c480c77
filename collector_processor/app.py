"""The running service: builds components from the config, starts them in order, stops on signal.

Start order: extensions -> exporters (queues re-deliver what a previous run left) ->
processors -> receivers; the health check turns ready last. Shutdown runs the other way:
not ready, receivers stop taking data, processors stop, exporters drain their queues until
the shutdown deadline, then storage closes.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from typing import Any, Dict, List, Optional

from collector_processor.auth import BearerTokenAuth
from collector_processor.config import CollectorConfig, ComponentConfig, unused_components
from collector_processor.exporter.file import FileExporter
from collector_processor.exporter.otlp_grpc import OTLPGrpcExporter
from collector_processor.exporter.otlp_http import OTLPHttpExporter
from collector_processor.extension.file_storage import FileStorage, StorageError
from collector_processor.extension.health_check import HealthCheck
from collector_processor.metrics_server import MetricsServer
from collector_processor.pipeline import Fanout, Pipeline
from collector_processor.processor.base import Processor
from collector_processor.processor.memory_limiter import MemoryLimiter, read_rss_bytes
from collector_processor.processor.resource import ResourceProcessor
from collector_processor.processor.resourcedetection import ResourceDetectionProcessor
from collector_processor.receiver.otlp import OTLPReceiver
from collector_processor.sending.queue import MemoryQueue, PersistentQueue, SendingQueue
from collector_processor.sending.sender import Exporter, ExporterSender
from collector_processor.telemetry import Metrics

__all__ = ["Service", "run"]

logger = logging.getLogger("collector_processor")

RECEIVER_GRACE_SECONDS = 5.0
EXPORTER_CLASSES: Dict[str, Any] = {
    "otlp_grpc": OTLPGrpcExporter,
    "otlp_http": OTLPHttpExporter,
    "file": FileExporter,
}


class Service:
    """All components of one configuration; ``start`` then ``shutdown`` (safe twice)."""

    def __init__(
        self,
        config: CollectorConfig,
        *,
        shutdown_timeout_seconds: float = 15.0,
        metrics: Optional[Metrics] = None,
    ) -> None:
        self.config = config
        self.shutdown_timeout_seconds = shutdown_timeout_seconds
        self.metrics = metrics or Metrics()
        self.storages: Dict[str, FileStorage] = {}
        self.authenticators: Dict[str, BearerTokenAuth] = {}
        self.health: Optional[HealthCheck] = None
        self.metrics_server: Optional[MetricsServer] = None
        self.exporters: Dict[str, ExporterSender] = {}
        self.processors: List[Any] = []
        self.pipelines: List[Pipeline] = []
        self.receivers: Dict[str, OTLPReceiver] = {}
        self._started_at = time.monotonic()
        self._shut_down = False

    # -- building --------------------------------------------------------------------------
    async def _start_extensions(self) -> None:
        loop = asyncio.get_running_loop()
        for name in self.config.service_extensions:
            extension = self.config.extensions[name]
            if extension.type == "file_storage":
                storage = FileStorage(name, extension.settings)
                storage.start(loop)
                self.storages[name] = storage
                self._warn_about_orphaned_queues(storage)
            elif extension.type == "bearertokenauth":
                self.authenticators[name] = BearerTokenAuth(name, extension.settings)
            elif extension.type == "health_check":
                self.health = HealthCheck(name, extension.settings)
                await self.health.start()

    def _warn_about_orphaned_queues(self, storage: FileStorage) -> None:
        """Name the queues no running exporter will send (renamed or removed exporters):
        their rows stay on disk, unsent, and nothing else would say so."""
        users = set()
        for pipe in self.config.pipelines:
            for exporter_id in pipe.exporters:
                queue = self.config.exporters[exporter_id].settings.sending.queue
                if queue.enabled and queue.storage == storage.name:
                    users.add(exporter_id)
        for table, rows in sorted(storage.stored_rows().items()):
            if rows and table not in users:
                logger.warning(
                    'file_storage "%s": %d queued request(s) of exporter "%s", which is not '
                    "configured to use this storage: kept on disk, not sent; to send them, "
                    'run an exporter with id "%s" and sending_queue::storage: %s in a pipeline',
                    storage.name,
                    rows,
                    table,
                    table,
                    storage.name,
                )

    def _make_queue(self, component: ComponentConfig) -> Optional[SendingQueue]:
        settings = component.settings.sending.queue
        if not settings.enabled:
            return None
        if settings.storage is None:
            return MemoryQueue(settings.queue_size)
        queue = PersistentQueue(settings.queue_size, self.storages[settings.storage], component.id)
        left = queue.open()
        if left:
            logger.info(
                'exporter "%s": %d queued request(s) from the previous run', component.id, left
            )
        return queue

    async def _start_exporters(self) -> None:
        used = {exporter for pipe in self.config.pipelines for exporter in pipe.exporters}
        for exporter_id in sorted(used):
            component = self.config.exporters[exporter_id]
            exporter: Exporter = EXPORTER_CLASSES[component.type](exporter_id, component.settings)
            sender = ExporterSender(
                exporter_id,
                exporter,
                component.settings.sending,
                self._make_queue(component),
                self.metrics,
            )
            self.exporters[exporter_id] = sender
            await sender.start()

    def _queue_bytes(self) -> int:
        return sum(
            sender.queue.bytes_in_memory for sender in self.exporters.values() if sender.queue
        )

    def _make_processor(self, component: ComponentConfig) -> Processor:
        if component.type == "resource":
            return ResourceProcessor(component.id, component.settings)
        if component.type == "resourcedetection":
            return ResourceDetectionProcessor(component.id, component.settings)
        return MemoryLimiter(component.id, component.settings, queue_bytes=self._queue_bytes)

    async def _start_pipelines(self) -> None:
        for pipe in self.config.pipelines:
            processors = []
            for processor_id in pipe.processors:
                # One instance per pipeline, as in the Collector.
                processor = self._make_processor(self.config.processors[processor_id])
                await processor.start()
                self.processors.append(processor)
                processors.append((processor_id, processor))
            exporters = [self.exporters[exporter_id] for exporter_id in pipe.exporters]
            self.pipelines.append(Pipeline(pipe.name, processors, exporters, self.metrics))

    async def _start_receivers(self) -> None:
        for receiver_id, component in self.config.receivers.items():
            pipelines = [
                pipeline
                for pipeline, pipe in zip(self.pipelines, self.config.pipelines)
                if receiver_id in pipe.receivers
            ]
            if not pipelines:
                continue
            receiver = OTLPReceiver(
                receiver_id,
                component.settings,
                Fanout(pipelines),
                self.metrics,
                self.authenticators,
            )
            self.receivers[receiver_id] = receiver
            await receiver.start()

    def _register_process_gauges(self) -> None:
        self.metrics.gauge(
            "process_uptime_seconds",
            "Seconds since the service started.",
            lambda: [({}, time.monotonic() - self._started_at)],
        )

        def rss() -> List[Any]:
            try:
                return [({}, float(read_rss_bytes()))]
            except OSError:
                return []

        self.metrics.gauge("process_memory_rss_bytes", "Resident memory of the service.", rss)

    async def start(self) -> None:
        for warning in unused_components(self.config):
            logger.warning("%s", warning)
        try:
            await self._start_extensions()
            await self._start_exporters()
            await self._start_pipelines()
            await self._start_receivers()
            self._register_process_gauges()
            address = self.config.telemetry.metrics_address
            if address:
                self.metrics_server = MetricsServer(address, self.metrics)
                await self.metrics_server.start()
        except BaseException:
            await self.shutdown()
            raise
        if self.health is not None:
            self.health.set_ready(True)
        logger.info("otelprof-collector is running (%d pipeline(s))", len(self.pipelines))

    async def shutdown(self) -> None:
        if self._shut_down:
            return
        self._shut_down = True
        deadline = time.monotonic() + self.shutdown_timeout_seconds
        if self.health is not None:
            self.health.set_ready(False)
        grace = min(RECEIVER_GRACE_SECONDS, self.shutdown_timeout_seconds)
        for receiver in self.receivers.values():
            await _quietly(receiver.shutdown(grace), f"receiver {receiver.id}")
        for processor in self.processors:
            await _quietly(processor.shutdown(), f"processor {processor.id}")
        await asyncio.gather(
            *(_quietly(s.shutdown(deadline), f"exporter {s.id}") for s in self.exporters.values())
        )
        for storage in self.storages.values():
            storage.close()
        if self.metrics_server is not None:
            await _quietly(self.metrics_server.shutdown(), "self-metrics")
        if self.health is not None:
            await _quietly(self.health.shutdown(), "health_check")
        logger.info("otelprof-collector stopped")


async def _quietly(step: Any, what: str) -> None:
    """One component failing to stop must not keep the others from stopping."""
    try:
        await step
    except Exception:
        logger.exception("error while stopping %s", what)


async def _serve(config: CollectorConfig, shutdown_timeout_seconds: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    service = Service(config, shutdown_timeout_seconds=shutdown_timeout_seconds)
    await service.start()
    await stop.wait()
    logger.info("signal received: stopping (draining for up to %gs)", shutdown_timeout_seconds)
    await service.shutdown()


def run(config: CollectorConfig, *, shutdown_timeout_seconds: float = 15.0) -> int:
    """Run until SIGTERM/SIGINT; 0 after a clean stop, 1 if the service could not start."""
    level = {"warn": "WARNING"}.get(config.telemetry.log_level, config.telemetry.log_level.upper())
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(_serve(config, shutdown_timeout_seconds))
    except (OSError, RuntimeError, StorageError) as exc:
        logger.error("otelprof-collector could not start: %s", exc)
        return 1
    return 0
