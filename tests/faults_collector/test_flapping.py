"""A flapping backend: it goes away and comes back, and between outages it fails on purpose with
every retryable answer; every accepted request still arrives, none is given up."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path
from typing import Callable, List, Union

import grpc
from aiohttp import web
from collector.backends import (
    BackgroundLoop,
    Failure,
    GrpcBackend,
    HttpBackend,
    wait_until,
)
from collector.harness import InProcessService, base_config
from collector.payloads import seeds
from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)

from .helpers import FAST_RETRY, Client, client_for, grpc_exporter

REQUESTS = 60
OUTAGES = 4
SENDERS = 3

GRPC_FAILURES = [
    Failure(grpc_code=grpc.StatusCode.UNAVAILABLE),
    Failure(grpc_code=grpc.StatusCode.RESOURCE_EXHAUSTED, retry_after_seconds=0),
    Failure(grpc_code=grpc.StatusCode.DEADLINE_EXCEEDED),
    Failure(grpc_code=grpc.StatusCode.ABORTED),
]
HTTP_FAILURES = [
    Failure(http_status=503, retry_after_seconds=0),
    Failure(http_status=429),
    Failure(http_status=502),
    Failure(http_status=504),
]


def send_concurrently(client: Client, count: int) -> List[threading.Thread]:
    """``SENDERS`` threads share the seeds; each retries what was refused, as an agent does."""

    def run(offset: int) -> None:
        for seed in range(offset, count, SENDERS):
            while not client.send(seed).ok:
                if client.unexpected:
                    return

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(SENDERS)]
    for thread in threads:
        thread.start()
    return threads


def flap(
    backend: Union[GrpcBackend, HttpBackend],
    failures: List[Failure],
    sender_retries: Callable[[], float],
    client: Client,
) -> None:
    """Down, up and failing on purpose, ``OUTAGES`` times, while requests keep arriving."""
    for outage in range(OUTAGES):
        # Wait for traffic, then pull the backend away mid-stream.
        wait_until(
            lambda o=outage: backend.recorder.attempts >= (o + 1) * REQUESTS // (OUTAGES + 2),
            60,
            "traffic before the outage",
        )
        before = sender_retries()
        backend.stop()
        wait_until(lambda b=before: sender_retries() >= b + 3, 60, "retries during the outage")
        backend.recorder.failures.extend(itertools.islice(itertools.cycle(failures), 12))
        backend.start()
    assert client.unexpected == []


def check_delivery(
    backend: Union[GrpcBackend, HttpBackend], client: Client, threads: List[threading.Thread]
) -> int:
    for thread in threads:
        thread.join(120)
    assert client.unexpected == [], client.unexpected
    assert sorted(client.accepted) == list(range(REQUESTS))
    wait_until(
        lambda: set(seeds(backend.recorder.received())) == set(range(REQUESTS)),
        120,
        "every accepted request at the backend",
    )
    received = seeds(backend.recorder.received())
    return len(received) - len(set(received))


def test_grpc_backend_flapping_loses_nothing(
    bg_loop: BackgroundLoop, start_service: Callable[..., InProcessService], tmp_path: Path
) -> None:
    backend = GrpcBackend(bg_loop).start()
    try:
        config = base_config(
            {"otlp_grpc": grpc_exporter(backend.port, sending_queue={"storage": "file_storage"})},
            extensions={"file_storage": {"directory": str(tmp_path)}},
        )
        service = start_service(config)
        sender = service.service.exporters["otlp_grpc"]
        client = client_for(service)
        threads = send_concurrently(client, REQUESTS)
        flap(backend, GRPC_FAILURES, lambda: sender._retries.value(exporter="otlp_grpc"), client)
        duplicates = check_delivery(backend, client, threads)
        assert sender._failed.value(exporter="otlp_grpc") == 0
        print(f"gRPC flapping: {REQUESTS} accepted, all delivered, {duplicates} duplicate(s)")
        client.close()
    finally:
        backend.stop()


def test_http_backend_flapping_loses_nothing(
    bg_loop: BackgroundLoop, start_service: Callable[..., InProcessService]
) -> None:
    backend = HttpBackend(bg_loop).start()
    try:
        exporter = {"endpoint": backend.url, "retry_on_failure": FAST_RETRY}
        service = start_service(base_config({"otlp_http": exporter}))
        sender = service.service.exporters["otlp_http"]
        client = client_for(service)
        threads = send_concurrently(client, REQUESTS)
        flap(backend, HTTP_FAILURES, lambda: sender._retries.value(exporter="otlp_http"), client)
        duplicates = check_delivery(backend, client, threads)
        assert sender._failed.value(exporter="otlp_http") == 0
        print(f"HTTP flapping: {REQUESTS} accepted, all delivered, {duplicates} duplicate(s)")
        client.close()
    finally:
        backend.stop()


def test_a_malformed_retry_after_is_retried_not_dropped(
    bg_loop: BackgroundLoop, start_service: Callable[..., InProcessService]
) -> None:
    """'Retry-After: ²' passes str.isdigit() but not float(); it once dropped the request."""
    received: List[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        if not received:
            received.append(b"")  # first attempt: refuse with a header that is not a number
            return web.Response(status=503, headers={"Retry-After": "\u00b2"})
        received.append(body)
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def serve() -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/v1development/profiles", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner

    runner = bg_loop.run(serve())
    try:
        port = runner.addresses[0][1]
        exporter = {
            "endpoint": f"http://127.0.0.1:{port}",
            "compression": "none",
            "retry_on_failure": FAST_RETRY,
        }
        service = start_service(base_config({"otlp_http": exporter}))
        client = client_for(service)
        assert client.send(0).ok
        wait_until(lambda: len(received) == 2, 30, "the retried request")
        assert seeds([ExportProfilesServiceRequest.FromString(received[1])]) == [0]
        sender = service.service.exporters["otlp_http"]
        assert sender._failed.value(exporter="otlp_http") == 0
        client.close()
    finally:
        bg_loop.run(runner.cleanup())
