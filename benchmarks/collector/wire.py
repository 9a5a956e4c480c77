"""A null OTLP profiles backend and a closed-loop load generator, each in its own process.

Both move raw bytes (no protobuf decoding) so that they cost as little as possible next to the
service being measured; counters live in shared memory for the orchestrating process to read.
"""

from __future__ import annotations

import multiprocessing
import threading
from concurrent import futures
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from typing import Any, List, Sequence

EXPORT_METHOD = "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_SPAWN = multiprocessing.get_context("spawn")  # grpc must not be forked after it starts


@dataclass
class Counters:
    """Requests and bytes seen, plus failed calls (load generator only)."""

    requests: Synchronized[int]
    payload_bytes: Synchronized[int]
    errors: Synchronized[int]

    @classmethod
    def create(cls) -> Counters:
        return cls(_SPAWN.Value("q", 0), _SPAWN.Value("q", 0), _SPAWN.Value("q", 0))

    def snapshot(self) -> tuple[int, int, int]:
        return self.requests.value, self.payload_bytes.value, self.errors.value


def _serve_null_backend(port: int, counters: Counters, ready: Any, stop: Any) -> None:
    import grpc

    def export(request: bytes, context: Any) -> bytes:
        with counters.requests.get_lock():
            counters.requests.value += 1
        with counters.payload_bytes.get_lock():
            counters.payload_bytes.value += len(request)
        return b""  # an empty ExportProfilesServiceResponse

    handler = grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.profiles.v1development.ProfilesService",
        {"Export": grpc.unary_unary_rpc_method_handler(export)},
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        handlers=[handler],
        options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)],
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    ready.set()
    stop.wait()
    server.stop(grace=None)


class NullBackend:
    """OTLP/gRPC ProfilesService that accepts and discards everything, in a child process."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.counters = Counters.create()
        self._ready = _SPAWN.Event()
        self._stop = _SPAWN.Event()
        self._process = _SPAWN.Process(
            target=_serve_null_backend,
            args=(port, self.counters, self._ready, self._stop),
            name="null-backend",
            daemon=True,
        )
        self._process.start()
        if not self._ready.wait(30):
            raise RuntimeError("null backend did not start")

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self._stop.set()
        self._process.join(10)


def _generate_load(
    target: str,
    payloads: Sequence[bytes],
    concurrency: int,
    counters: Counters,
    go: Any,
    stop: Any,
) -> None:
    import grpc

    options = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]
    # One channel per worker: a single HTTP/2 connection would serialize the big messages.
    channels = [grpc.insecure_channel(target, options=options) for _ in range(concurrency)]

    def worker(index: int) -> None:
        export = channels[index].unary_unary(EXPORT_METHOD, None, None)
        position = index
        while not stop.is_set():
            payload = payloads[position % len(payloads)]
            position += concurrency
            try:
                export(payload, timeout=30)
            except grpc.RpcError:
                with counters.errors.get_lock():
                    counters.errors.value += 1
                continue
            with counters.requests.get_lock():
                counters.requests.value += 1
            with counters.payload_bytes.get_lock():
                counters.payload_bytes.value += len(payload)

    go.wait()
    threads = [
        threading.Thread(target=worker, args=(i,), name=f"load-{i}") for i in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for channel in channels:
        channel.close()


class LoadGenerator:
    """`concurrency` callers, each sending the next payload as soon as the last one returned."""

    def __init__(self, target: str, payloads: List[bytes], concurrency: int) -> None:
        self.counters = Counters.create()
        self._go = _SPAWN.Event()
        self._stop = _SPAWN.Event()
        self._process = _SPAWN.Process(
            target=_generate_load,
            args=(target, payloads, concurrency, self.counters, self._go, self._stop),
            name="load-generator",
            daemon=True,
        )
        self._process.start()

    def start(self) -> None:
        self._go.set()

    def close(self) -> None:
        self._go.set()
        self._stop.set()
        self._process.join(60)
        if self._process.is_alive():
            self._process.kill()
