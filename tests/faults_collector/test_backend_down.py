"""Backend down for a long time: the queue holds what it accepted, never more than queue_size;
beyond that the receiver refuses with a retryable answer; everything accepted arrives later."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
from collector.backends import BackgroundLoop, GrpcBackend, free_port, wait_until
from collector.harness import InProcessService, base_config
from collector.payloads import seeds

from .helpers import client_for, grpc_exporter, queue_rows

QUEUE_SIZE = 20
EXPORTER = "otlp_grpc/backend"


@pytest.mark.parametrize("persistent", [True, False], ids=["persistent", "memory"])
def test_a_full_queue_refuses_retryably_and_never_grows(
    bg_loop: BackgroundLoop,
    start_service: Callable[..., InProcessService],
    tmp_path: Path,
    persistent: bool,
) -> None:
    backend_port = free_port()  # nothing listens here until the backend comes back
    queue = {"queue_size": QUEUE_SIZE, **({"storage": "file_storage"} if persistent else {})}
    extensions = {"file_storage": {"directory": str(tmp_path)}} if persistent else {}
    config = base_config(
        {EXPORTER: grpc_exporter(backend_port, sending_queue=queue)}, extensions=extensions
    )
    service = start_service(config)
    sender = service.service.exporters[EXPORTER]
    client = client_for(service)
    try:
        for seed in range(QUEUE_SIZE + 10):
            client.send(seed)
        assert client.unexpected == []
        assert sorted(client.accepted) == list(range(QUEUE_SIZE))
        assert [seed for seed, _ in client.refused] == list(range(QUEUE_SIZE, QUEUE_SIZE + 10))
        assert all("is full" in detail for _, detail in client.refused), client.refused

        # Many more attempts while the backend stays down (retries keep failing meanwhile):
        # the queue stays at its bound, in memory and on disk.
        wait_until(lambda: sender._retries.value(exporter=EXPORTER) >= 3 * QUEUE_SIZE)
        for seed in range(QUEUE_SIZE + 10, QUEUE_SIZE + 50):
            client.send(seed)
        assert sorted(client.accepted) == list(range(QUEUE_SIZE))
        assert sender.queue is not None and sender.queue.size == QUEUE_SIZE
        if persistent:
            assert queue_rows(tmp_path, EXPORTER) == QUEUE_SIZE

        backend = GrpcBackend(bg_loop, port=backend_port).start()
        try:
            backend.recorder.wait_for(QUEUE_SIZE, timeout=60)
            # The clients retry what was refused; now it is accepted and delivered too.
            for seed, _ in list(client.refused):
                wait_until(lambda s=seed: client.send(s).ok, what=f"request {seed} accepted")
            total = QUEUE_SIZE + 50
            backend.recorder.wait_for(total, timeout=60)
            assert sorted(set(seeds(backend.recorder.received()))) == list(range(total))
        finally:
            backend.stop()
        assert sender._failed.value(exporter=EXPORTER) == 0
        if persistent:
            wait_until(lambda: queue_rows(tmp_path, EXPORTER) == 0, what="the queue to empty")
    finally:
        client.close()
