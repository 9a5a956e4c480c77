"""Fixtures that build (once, cached) and run the real OpenTelemetry Collector on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, List, Mapping, Optional

import pytest

from .otelcol import CollectorError, build_otelcol
from .services import (
    RunningService,
    collector_processor_command,
    memory_limiter,
    otelcol_command,
    start_service,
)
from .sinks import GrpcSink, HttpSink


class Starter:
    """Starts services of one kind for one test; all are stopped (SIGTERM) at teardown."""

    def __init__(self, command: List[str], workdir: Path, default_processors: Mapping[str, Any]):
        self._command = command
        self._workdir = workdir
        self._default_processors = default_processors
        self.running: List[RunningService] = []

    def __call__(
        self, exporters: Mapping[str, Any], processors: Optional[Mapping[str, Any]] = None
    ) -> RunningService:
        chosen = self._default_processors if processors is None else processors
        workdir = self._workdir / str(len(self.running))
        service = start_service(self._command, workdir, exporters, chosen)
        self.running.append(service)
        return service

    def stop_all(self) -> None:
        for service in self.running:
            service.stop()


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
def start_otelcol(otelcol_binary: Path, tmp_path: Path) -> Iterator[Starter]:
    """Start real Collectors (memory_limiter in the pipeline unless told otherwise)."""
    starter = Starter(otelcol_command(otelcol_binary), tmp_path / "otelcol", memory_limiter())
    yield starter
    starter.stop_all()


@pytest.fixture
def start_collector_processor(tmp_path: Path) -> Iterator[Starter]:
    """Start `python -m collector_processor` services (no processors unless given)."""
    starter = Starter(collector_processor_command(), tmp_path / "collector_processor", {})
    yield starter
    starter.stop_all()


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
