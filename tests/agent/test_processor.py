"""The export processor: intervals, bounded queue, retry and drop rules, shutdown deadline."""

from __future__ import annotations

import logging

from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)

from otelprof.export.base import ExportResult, ExportStatus
from otelprof.export.memory import InMemoryProfileExporter
from otelprof.export.retry import RetryPolicy
from otelprof.processor import ExportProcessor
from tests.agent.helpers import FakeSeconds

RETRY = ExportResult(ExportStatus.RETRYABLE, "unavailable")
RETRY_LATER = ExportResult(ExportStatus.RETRYABLE, "slow down", retry_after_seconds=7.0)
REFUSED = ExportResult(ExportStatus.PERMANENT, "bad request")


class Numbered:
    """A collect function returning requests tagged with a sequence number."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> ExportProfilesServiceRequest:
        self.count += 1
        request = ExportProfilesServiceRequest()
        request.dictionary.string_table.append(f"request-{self.count}")
        return request


def _tags(exporter: InMemoryProfileExporter) -> list:
    return [r.dictionary.string_table[0] for r in exporter.get_finished_requests()]


def _processor(exporter, clock, queue_size=16, policy=None, collect=None):
    return ExportProcessor(
        collect=collect or Numbered(),
        exporter=exporter,
        interval_seconds=10.0,
        queue_size=queue_size,
        retry_policy=policy
        or RetryPolicy(
            initial_interval_seconds=1.0, randomization_factor=0.0, max_elapsed_seconds=60
        ),
        clock=clock,
    )


def test_collects_and_exports_once_per_interval():
    clock, exporter = FakeSeconds(), InMemoryProfileExporter()
    processor = _processor(exporter, clock)
    assert processor.step() == 10.0  # nothing due yet
    clock.advance(10.0)
    processor.step()
    clock.advance(10.0)
    processor.step()
    assert _tags(exporter) == ["request-1", "request-2"]


def test_retryable_failure_is_retried_with_backoff_and_server_delay_then_delivered():
    clock, exporter = FakeSeconds(), InMemoryProfileExporter()
    exporter.set_results([RETRY, RETRY_LATER])
    processor = _processor(exporter, clock)
    clock.advance(10.0)
    assert processor.step() == 1.0  # first retry after the initial interval
    clock.advance(1.0)
    assert processor.step() == 7.0  # the server asked for 7s, longer than the 1.5s backoff
    clock.advance(7.0)
    processor.step()
    assert _tags(exporter) == ["request-1"]
    assert exporter.attempts == 3
    assert processor.exported_requests == 1 and processor.failed_requests == 0


def test_permanent_failure_drops_once_with_one_log_line(caplog):
    clock, exporter = FakeSeconds(), InMemoryProfileExporter()
    exporter.set_results([REFUSED, REFUSED])
    processor = _processor(exporter, clock)
    with caplog.at_level(logging.WARNING, logger="otelprof"):
        for _ in range(3):
            clock.advance(10.0)
            processor.step()
    assert exporter.attempts == 3  # never retried
    assert _tags(exporter) == ["request-3"]
    assert processor.failed_requests == 2
    lines = [r for r in caplog.records if "bad request" in r.getMessage()]
    assert len(lines) == 1  # the second identical refusal within a minute is only counted


def test_full_queue_drops_the_oldest_and_counts_it(caplog):
    clock, exporter = FakeSeconds(), InMemoryProfileExporter()
    exporter.set_results([RETRY] * 6)
    processor = _processor(
        exporter,
        clock,
        queue_size=2,
        policy=RetryPolicy(
            initial_interval_seconds=30.0,
            max_interval_seconds=30.0,
            randomization_factor=0.0,
            max_elapsed_seconds=1000,
        ),
    )
    with caplog.at_level(logging.WARNING, logger="otelprof"):
        for _ in range(4):  # request-1 fails; 2, 3, 4 queue behind it in a queue of 2
            clock.advance(10.0)
            processor.step()
    assert processor.dropped_requests == 2
    assert any("queue full" in r.getMessage() for r in caplog.records)
    exporter.set_results([])
    clock.advance(30.0)
    processor.step()  # collects request-5 (dropping request-3), then sends in order
    assert _tags(exporter) == ["request-4", "request-5"]
    assert processor.dropped_requests == 3


def test_gives_up_after_max_elapsed_time():
    clock, exporter = FakeSeconds(), InMemoryProfileExporter()
    exporter.set_results([RETRY] * 100)
    processor = _processor(
        exporter,
        clock,
        policy=RetryPolicy(
            initial_interval_seconds=2.0,
            multiplier=1.0,
            max_interval_seconds=2.0,
            randomization_factor=0.0,
            max_elapsed_seconds=5.0,
        ),
    )
    clock.advance(10.0)
    for _ in range(10):
        processor.step()
        clock.advance(2.0)
        if not processor._queue:
            break
    assert not processor._queue
    assert processor.failed_requests == 1
    assert exporter.attempts == 3  # t=0, 2, 4; the next would start past 5s


def test_force_flush_without_thread_collects_and_sends_now():
    clock, exporter = FakeSeconds(), InMemoryProfileExporter()
    processor = _processor(exporter, clock)
    assert processor.force_flush(1.0)
    assert _tags(exporter) == ["request-1"]


def test_shutdown_flushes_last_interval_with_real_thread_and_closes_exporter():
    exporter = InMemoryProfileExporter()
    processor = ExportProcessor(collect=Numbered(), exporter=exporter, interval_seconds=3600)
    processor.start()
    processor.shutdown(timeout_seconds=10.0)
    assert _tags(exporter) == ["request-1"]
    assert exporter.export(ExportProfilesServiceRequest(), 1.0).status is ExportStatus.PERMANENT


def test_collect_errors_are_logged_and_swallowed(caplog):
    def broken():
        raise RuntimeError("boom")

    clock, exporter = FakeSeconds(), InMemoryProfileExporter()
    processor = _processor(exporter, clock, collect=broken)
    clock.advance(10.0)
    with caplog.at_level(logging.ERROR, logger="otelprof"):
        processor.step()
    assert "collecting the profile failed" in caplog.text
    assert exporter.attempts == 0


def test_exporter_that_raises_does_not_kill_the_worker():
    class Raising(InMemoryProfileExporter):
        def export(self, request, timeout_seconds):
            raise ValueError("exporter bug")

    clock = FakeSeconds()
    processor = _processor(Raising(), clock)
    clock.advance(10.0)
    processor.step()
    assert processor.failed_requests == 1 and not processor._queue


def test_a_full_queue_keeps_backing_off_instead_of_retrying_at_every_collection():
    clock, exporter = FakeSeconds(), InMemoryProfileExporter()
    exporter.set_results([RETRY] * 100)
    processor = _processor(
        exporter,
        clock,
        queue_size=1,
        policy=RetryPolicy(
            initial_interval_seconds=25.0,
            max_interval_seconds=25.0,
            randomization_factor=0.0,
            max_elapsed_seconds=1000,
        ),
    )
    clock.advance(10.0)
    processor.step()  # request-1 fails: next attempt in 25 s
    clock.advance(10.0)
    processor.step()  # request-2 replaces it; it inherits the wait instead of trying now
    assert exporter.attempts == 1
    assert processor.dropped_requests == 1
    clock.advance(15.0)
    processor.step()
    assert exporter.attempts == 2


def test_an_outage_is_a_warning_at_its_first_failure_and_its_end_is_logged(caplog):
    # A wrong endpoint must show at the default log level long before a profile is given up.
    clock, exporter = FakeSeconds(), InMemoryProfileExporter()
    exporter.set_results([RETRY, RETRY, RETRY])
    processor = _processor(exporter, clock)
    with caplog.at_level(logging.INFO, logger="otelprof"):
        clock.advance(10.0)
        processor.step()  # attempt 1 fails: the outage begins
        for _ in range(3):  # attempts 2 and 3 fail, 4 succeeds
            clock.advance(processor.step() or 0.0)
        processor.step()
    assert _tags(exporter) == ["request-1"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "otelprof: export failed, retrying with backoff for up to 60s "
        "(profiles stay queued, 16 at most): unavailable"
    ]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos == ["otelprof: export recovered after 3 failed attempt(s)"]
    caplog.clear()
    exporter.set_results([RETRY])
    with caplog.at_level(logging.WARNING, logger="otelprof"):
        clock.advance(10.0)
        processor.step()  # a new outage: a new warning
    assert ["export failed, retrying" in r.getMessage() for r in caplog.records] == [True]


def test_a_profile_the_last_attempt_fails_to_send_is_logged_with_the_reason(caplog):
    clock, exporter = FakeSeconds(), InMemoryProfileExporter()
    exporter.set_results([RETRY])
    processor = _processor(exporter, clock)
    with caplog.at_level(logging.WARNING, logger="otelprof"):
        assert not processor.force_flush(1.0)  # no thread: the final flush, one attempt
    assert processor.failed_requests == 1 and not processor._queue
    assert [r.getMessage() for r in caplog.records] == [
        "otelprof: 1 profile(s) not sent (the last attempt, at shutdown or flush): unavailable"
    ]


def test_exports_are_not_traced_by_an_instrumented_http_client():
    # Under opentelemetry-instrument with the requests instrumentation installed, every export
    # would be a POST span in the application's traces.
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from otelprof.config import ExporterConfig
    from otelprof.export.otlp_http import OTLPHttpProfileExporter
    from tests.export.servers import RecordingHttpServer

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    server = RecordingHttpServer().start()
    RequestsInstrumentor().instrument(tracer_provider=provider)
    try:
        exporter = OTLPHttpProfileExporter(
            ExporterConfig(protocol="http/protobuf", endpoint=server.endpoint)
        )
        processor = ExportProcessor(collect=Numbered(), exporter=exporter, interval_seconds=3600)
        assert processor.force_flush(10.0)
        import requests

        requests.get(f"http://127.0.0.1:{server.port}/other", timeout=10)  # still traced
    finally:
        RequestsInstrumentor().uninstrument()
        server.stop()
    assert len(server.raw_bodies) == 1
    assert [span.name for span in spans.get_finished_spans()] == ["GET"]
