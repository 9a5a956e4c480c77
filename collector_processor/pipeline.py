"""Pipelines: processors in order, then fan-out to every exporter's sending chain.

A request is accepted only when it is written to the queue of every exporter of every pipeline
that receives it (and, for an exporter without a queue, actually sent). Slots in all queues are
reserved before anything is written, so a full queue turns the whole request away (retryable)
instead of delivering it to some backends only.
"""

from __future__ import annotations

import asyncio
from typing import List, Optional, Sequence

from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)

from collector_processor.errors import RefusedError
from collector_processor.processor.base import Processor
from collector_processor.sending.sender import ExporterSender
from collector_processor.telemetry import Metrics

__all__ = ["Fanout", "Pipeline"]


class Pipeline:
    def __init__(
        self,
        name: str,
        processors: Sequence[tuple[str, Processor]],
        exporters: Sequence[ExporterSender],
        metrics: Metrics,
    ) -> None:
        self.name = name
        self.processors = list(processors)
        self.exporters = list(exporters)
        self._refused = metrics.counter(
            "processor_refused_requests_total", "Requests a processor turned away (retryable)."
        )

    def admission_error(self) -> Optional[RefusedError]:
        """A refusal that is certain before decoding: a processor refusing, a queue full.

        Receivers ask first, so that an overloaded service turns requests away for the cost
        of a check instead of decoding and validating each one to refuse it anyway.
        """
        for processor_id, processor in self.processors:
            check = getattr(processor, "admission_error", None)
            error = check() if check is not None else None
            if error is not None:
                self._refused.inc(processor=processor_id, pipeline=self.name)
                return error  # type: ignore[no-any-return]
        for exporter in self.exporters:
            error = exporter.full_error()
            if error is not None:
                return error
        return None

    async def consume(self, request: ExportProfilesServiceRequest) -> None:
        for processor_id, processor in self.processors:
            try:
                processor.process(request)
            except RefusedError:
                self._refused.inc(processor=processor_id, pipeline=self.name)
                raise
        payload = request.SerializeToString()
        queued = [exporter for exporter in self.exporters if exporter.queued]
        reserved: List[ExporterSender] = []
        try:
            for exporter in queued:
                exporter.reserve()
                reserved.append(exporter)
        except RefusedError:
            for exporter in reserved:
                exporter.release()
            raise
        sends = [exporter.enqueue(payload) for exporter in queued]
        sends += [exporter.send_now(payload) for exporter in self.exporters if not exporter.queued]
        if len(sends) == 1:
            await sends[0]  # one exporter: no tasks to gather
            return
        results = await asyncio.gather(*sends, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result


class Fanout:
    """What a receiver calls: every pipeline that lists the receiver gets the request."""

    def __init__(self, pipelines: Sequence[Pipeline]) -> None:
        self.pipelines = list(pipelines)

    def admission_error(self) -> Optional[RefusedError]:
        for pipeline in self.pipelines:
            error = pipeline.admission_error()
            if error is not None:
                return error
        return None

    async def consume(self, request: ExportProfilesServiceRequest) -> None:
        if len(self.pipelines) == 1:
            await self.pipelines[0].consume(request)
            return
        copies = []
        for _ in self.pipelines[1:]:
            copy = type(request)()  # a full message or a wireviews head
            copy.CopyFrom(request)  # processors change requests in place
            copies.append(copy)
        results = await asyncio.gather(
            *(pipe.consume(req) for pipe, req in zip(self.pipelines, [request, *copies])),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
