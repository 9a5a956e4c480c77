"""Fixtures for exporter tests: loopback servers (plain and TLS) and throwaway TLS files."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from .certs import TlsFiles, make_tls_files
from .servers import RecordingGrpcServer, RecordingHttpServer


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(Path(tmp_path_factory.mktemp("tls")))


@pytest.fixture
def grpc_server() -> Iterator[RecordingGrpcServer]:
    with RecordingGrpcServer() as server:
        yield server


@pytest.fixture
def http_server() -> Iterator[RecordingHttpServer]:
    with RecordingHttpServer() as server:
        yield server
