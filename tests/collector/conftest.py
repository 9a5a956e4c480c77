"""Fixtures for the collector tests: a background loop, recording backends, running services."""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List

import pytest

from .backends import BackgroundLoop, GrpcBackend, HttpBackend
from .harness import InProcessService


@pytest.fixture
def bg_loop() -> Iterator[BackgroundLoop]:
    loop = BackgroundLoop()
    yield loop
    loop.close()


@pytest.fixture
def grpc_backend(bg_loop: BackgroundLoop) -> Iterator[GrpcBackend]:
    backend = GrpcBackend(bg_loop).start()
    yield backend
    backend.stop()


@pytest.fixture
def http_backend(bg_loop: BackgroundLoop) -> Iterator[HttpBackend]:
    backend = HttpBackend(bg_loop).start()
    yield backend
    backend.stop()


@pytest.fixture
def start_service(bg_loop: BackgroundLoop) -> Iterator[Callable[..., InProcessService]]:
    """Start in-process services from config dicts; all are shut down after the test."""
    started: List[InProcessService] = []

    def start(config: Dict[str, Any], **kwargs: Any) -> InProcessService:
        service = InProcessService(bg_loop, config, **kwargs).start()
        started.append(service)
        return service

    yield start
    for service in reversed(started):
        service.stop()
