"""Fixtures for the collector fault tests: a background loop, in-process and real services."""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List

import pytest
from collector.backends import BackgroundLoop
from collector.harness import InProcessService, ServiceProcess


@pytest.fixture
def bg_loop() -> Iterator[BackgroundLoop]:
    loop = BackgroundLoop()
    yield loop
    loop.close()


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


@pytest.fixture
def processes() -> Iterator[List[ServiceProcess]]:
    """Real collector subprocesses; any still running after the test is killed."""
    started: List[ServiceProcess] = []
    yield started
    for process in started:
        process.ensure_stopped()
