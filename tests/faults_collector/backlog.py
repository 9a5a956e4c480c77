"""A large backlog: fill a persistent queue while the backend is down, kill -9, restart with the
backend up, and measure start-up time, memory and drain rate. Shared by the fast test and
``tests/soak/soak_collector_backlog.py``."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import List

from collector.backends import BackgroundLoop, GrpcBackend, free_port, wait_until
from collector.harness import ServiceProcess, base_config
from collector.payloads import seeds

from .helpers import Client, grpc_exporter, queue_rows, rss_kib

EXPORTER = "otlp_grpc/backend"


@dataclass
class BacklogResult:
    requests: int = 0
    fill_seconds: float = 0.0
    queue_megabytes: float = 0.0
    startup_seconds: float = 0.0
    drain_seconds: float = 0.0
    rss_kib_samples: List[int] = field(default_factory=list)
    delivered_unique: int = 0
    duplicates: int = 0
    lost: int = 0
    log_line_found: bool = False


def run_backlog(
    directory: Path, loop: BackgroundLoop, *, requests: int, senders: int = 4
) -> BacklogResult:
    result = BacklogResult(requests=requests)
    backend = GrpcBackend(loop, port=free_port())  # started only for the second run
    ports = {"grpc": free_port(), "http": free_port()}
    queue = {"storage": "file_storage", "queue_size": requests + 1000}
    config = base_config(
        {EXPORTER: grpc_exporter(backend.port, sending_queue=queue)},
        extensions={
            "file_storage": {"directory": str(directory / "queue"), "create_directory": True}
        },
        grpc_port=ports["grpc"],
        http_port=ports["http"],
    )
    client = Client(ports["grpc"], ports["http"])
    first = ServiceProcess(config, directory, "fill")
    second = ServiceProcess(config, directory, "drain")
    try:
        first.start()
        started = time.monotonic()
        with ThreadPoolExecutor(senders) as pool:
            outcomes = list(pool.map(client.send, range(requests)))
        result.fill_seconds = time.monotonic() - started
        assert all(outcome.ok for outcome in outcomes), [o for o in outcomes if not o.ok][:3]
        assert queue_rows(directory / "queue", EXPORTER) == requests
        result.queue_megabytes = (
            sum(p.stat().st_size for p in (directory / "queue").iterdir()) / 1e6
        )
        first.kill9()

        backend.start()
        started = time.monotonic()
        second.start()  # returns once the health check answers 200
        result.startup_seconds = time.monotonic() - started
        assert second.process is not None
        pid = second.process.pid
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.2):  # a memory probe's period, not synchronisation
                try:
                    result.rss_kib_samples.append(rss_kib(pid))
                except (OSError, AssertionError):
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        wanted = set(range(requests))
        wait_until(
            lambda: wanted <= set(seeds(backend.recorder.received())),
            max(120.0, requests / 20),
            "the backlog at the backend",
        )
        result.drain_seconds = time.monotonic() - started
        done.set()
        sampler.join(10)
        wait_until(lambda: queue_rows(directory / "queue", EXPORTER) == 0, 60, "an empty queue")
        assert second.terminate() == 0
        received = seeds(backend.recorder.received())
        result.delivered_unique = len(set(received))
        result.duplicates = len(received) - len(set(received))
        result.lost = len(wanted - set(received))
        result.log_line_found = (
            f"{requests} queued request(s) from the previous run" in second.log()
        )
    finally:
        client.close()
        first.ensure_stopped()
        second.ensure_stopped()
        backend.stop()
    return result
