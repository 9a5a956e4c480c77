"""kill -9 at random points under concurrent load, restart, repeat; then count what arrived.

Shared by the fast test (a few kills) and ``tests/soak/soak_collector_kill9.py`` (many).
Every request that got OK must reach the backend (at-least-once); duplicates are counted.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Tuple

from collector.backends import BackgroundLoop, GrpcBackend, free_port, wait_until
from collector.harness import ServiceProcess, base_config
from collector.payloads import seeds

from .helpers import Client, grpc_exporter, queue_rows

EXPORTER = "otlp_grpc/backend"
RETRY_PAUSE_SECONDS = 0.02


@dataclass
class Kill9Result:
    accepted: int = 0
    delivered_unique: int = 0
    duplicates: int = 0
    lost: List[int] = field(default_factory=list)
    kills: int = 0
    unexpected: List[Tuple[int, str]] = field(default_factory=list)
    refused_while_down: int = 0
    seconds: float = 0.0


def collector_config(directory: Path, backend_port: int, ports: Dict[str, int]) -> Dict[str, Any]:
    return base_config(
        {EXPORTER: grpc_exporter(backend_port, sending_queue={"storage": "file_storage"})},
        extensions={
            "file_storage": {"directory": str(directory / "queue"), "create_directory": True}
        },
        grpc_port=ports["grpc"],
        http_port=ports["http"],
    )


class Senders:
    """Threads taking the next seed and sending it until it is accepted, as agents retry."""

    def __init__(self, client: Client, count: int) -> None:
        self.client = client
        self._seeds = itertools.count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, name=f"sender-{i}", daemon=True)
            for i in range(count)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                seed = next(self._seeds)
            # Never give up a seed half way: what was attempted ends up accepted.
            while not self.client.send(seed).ok:
                if self.client.unexpected and self.client.unexpected[-1][0] == seed:
                    return
                # An agent backs off before retrying (pacing, not synchronisation).
                time.sleep(RETRY_PAUSE_SECONDS)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(120)


def kill9_rounds(
    directory: Path,
    loop: BackgroundLoop,
    *,
    kills: int,
    senders: int,
    accepted_between_kills: int,
    rng: random.Random,
) -> Kill9Result:
    started = time.monotonic()
    backend = GrpcBackend(loop).start()
    ports = {"grpc": free_port(), "http": free_port()}
    config = collector_config(directory, backend.port, ports)
    client = Client(ports["grpc"], ports["http"])
    result = Kill9Result()
    processes: List[ServiceProcess] = []
    try:
        processes.append(ServiceProcess(config, directory, "run0").start())
        load = Senders(client, senders)
        load.start()
        target = 0
        for round_index in range(kills):
            # A random point: after a random number of further acceptances.
            target += rng.randint(accepted_between_kills // 2, accepted_between_kills * 3 // 2)
            wait_until(lambda t=target: len(client.accepted) >= t, 120, f"{target} accepted")
            processes[-1].kill9()
            result.kills += 1
            processes.append(ServiceProcess(config, directory, f"run{round_index + 1}").start())
        wait_until(lambda: len(client.accepted) >= target + accepted_between_kills, 120)
        load.stop()
        accepted = set(client.accepted)
        wait_until(
            lambda: accepted <= set(seeds(backend.recorder.received())),
            120,
            f"every accepted request at the backend (log: {processes[-1].log()[-2000:]})",
        )
        wait_until(lambda: queue_rows(directory / "queue", EXPORTER) == 0, 60, "an empty queue")
        assert processes[-1].terminate() == 0
        received = seeds(backend.recorder.received())
        result.accepted = len(accepted)
        result.delivered_unique = len(set(received))
        result.duplicates = len(received) - len(set(received))
        result.lost = sorted(accepted - set(received))
        result.unexpected = list(client.unexpected)
        result.refused_while_down = len(client.refused)
    finally:
        client.close()
        for process in processes:
            process.ensure_stopped()
        backend.stop()
    result.seconds = time.monotonic() - started
    return result
