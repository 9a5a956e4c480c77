"""Fixtures that build (once, cached) and run the real OpenTelemetry Collector on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, List, Mapping

import pytest

from .otelcol import CollectorError, RunningCollector, build_otelcol, start_collector
from .sinks import GrpcSink, HttpSink

StartCollector = Callable[[Mapping[str, Any]], RunningCollector]


@pytest.fixture(scope="session")
def otelcol_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Collector binary; built by scripts/build_otelcol.sh when the cache lacks it."""
    log_path = tmp_path_factory.mktemp("otelcol-build") / "build.log"
    try:
        return build_otelcol(log_path)
    except CollectorError as error:
        # Never skip: these tests are the proof that we interoperate.
        pytest.fail(str(error), pytrace=False)


@pytest.fixture
def start_otelcol(otelcol_binary: Path, tmp_path: Path) -> Iterator[StartCollector]:
    """Start Collectors with the given exporters; all are stopped (SIGTERM) at teardown."""
    running: List[RunningCollector] = []

    def start(exporters: Mapping[str, Any]) -> RunningCollector:
        collector = start_collector(otelcol_binary, tmp_path / f"otelcol-{len(running)}", exporters)
        running.append(collector)
        return collector

    yield start
    for collector in running:
        collector.stop()


@pytest.fixture
def grpc_sink() -> Iterator[GrpcSink]:
    sink = GrpcSink()
    yield sink
    sink.stop()


@pytest.fixture
def http_sink() -> Iterator[HttpSink]:
    sink = HttpSink()
    yield sink
    sink.stop()
