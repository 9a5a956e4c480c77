"""The in-memory exporter records requests, scripts failures and waits without sleeping."""

from __future__ import annotations

import threading

from otelprof.export.base import ExportResult, ExportStatus
from otelprof.export.memory import InMemoryProfileExporter

from .servers import make_request


def test_records_requests_in_order_and_clears() -> None:
    exporter = InMemoryProfileExporter()
    first, second = make_request("a"), make_request("b")

    assert exporter.export(first, 1.0).ok
    assert exporter.export(second, 1.0).ok

    assert exporter.get_finished_requests() == [first, second]
    exporter.get_finished_requests().clear()  # a copy: the exporter's list is untouched
    assert len(exporter.get_finished_requests()) == 2
    exporter.clear()
    assert exporter.get_finished_requests() == []
    assert exporter.attempts == 2


def test_scripted_results_then_success() -> None:
    exporter = InMemoryProfileExporter()
    busy = ExportResult(ExportStatus.RETRYABLE, "busy", 2.0)
    refused = ExportResult(ExportStatus.PERMANENT, "bad")
    exporter.set_results([busy, refused])

    assert exporter.export(make_request("1"), 1.0) == busy
    assert exporter.export(make_request("2"), 1.0) == refused
    assert exporter.export(make_request("3"), 1.0).ok

    assert [
        r.resource_profiles[0].resource.attributes[0].value.string_value
        for r in exporter.get_finished_requests()
    ] == ["3"]
    assert exporter.attempts == 3


def test_wait_for_wakes_when_another_thread_exports() -> None:
    exporter = InMemoryProfileExporter()
    go = threading.Event()

    def producer() -> None:
        go.wait()
        for _ in range(3):
            exporter.export(make_request(), 1.0)

    thread = threading.Thread(target=producer)
    thread.start()
    try:
        assert not exporter.wait_for(1, timeout_seconds=0)  # nothing yet
        go.set()
        assert exporter.wait_for(3, timeout_seconds=30)
    finally:
        go.set()
        thread.join()
    assert len(exporter.get_finished_requests()) == 3


def test_shutdown_refuses_but_keeps_what_was_recorded() -> None:
    exporter = InMemoryProfileExporter()
    exporter.export(make_request(), 1.0)
    exporter.shutdown()
    exporter.shutdown()

    assert exporter.export(make_request(), 1.0).status is ExportStatus.PERMANENT
    assert len(exporter.get_finished_requests()) == 1
