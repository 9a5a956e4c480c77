"""Each exporter against a real loopback backend: success, failure classification, encodings."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any, Dict, List, Type

import grpc
import pytest

from collector_processor import otlp_json
from collector_processor.confparse import Node
from collector_processor.errors import PermanentError, RetryableError
from collector_processor.exporter.config import (
    load_file_config,
    load_otlp_grpc_config,
    load_otlp_http_config,
)
from collector_processor.exporter.file import FileExporter
from collector_processor.exporter.otlp_grpc import OTLPGrpcExporter
from collector_processor.exporter.otlp_http import OTLPHttpExporter, parse_retry_after

from .backends import BackgroundLoop, Failure, GrpcBackend, HttpBackend, free_port
from .payloads import make_request

PAYLOAD = make_request().SerializeToString()


def grpc_exporter(backend_endpoint: str, **extra: Any) -> OTLPGrpcExporter:
    raw: Dict[str, Any] = {"endpoint": backend_endpoint, "tls": {"insecure": True}, **extra}
    return OTLPGrpcExporter("otlp_grpc", load_otlp_grpc_config(Node(raw, "exporters::otlp_grpc")))


def http_exporter(**raw: Any) -> OTLPHttpExporter:
    return OTLPHttpExporter("otlp_http", load_otlp_http_config(Node(raw, "exporters::otlp_http")))


def export_once(loop: BackgroundLoop, exporter: Any, payload: bytes = PAYLOAD) -> None:
    async def go() -> None:
        await exporter.start()
        try:
            await exporter.export(payload)
        finally:
            await exporter.shutdown()

    loop.run(go())


# -- otlp_grpc ---------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_grpc_exporter_delivers(
    bg_loop: BackgroundLoop, grpc_backend: GrpcBackend, compression: str
) -> None:
    exporter = grpc_exporter(
        grpc_backend.endpoint, compression=compression, headers={"X-Tenant": "t1"}
    )
    export_once(bg_loop, exporter)
    assert grpc_backend.recorder.received() == [make_request()]
    assert grpc_backend.recorder.headers[0]["x-tenant"] == "t1"


@pytest.mark.parametrize(
    ("failure", "error", "delay"),
    [
        (Failure(grpc.StatusCode.UNAVAILABLE), RetryableError, None),
        (Failure(grpc.StatusCode.DEADLINE_EXCEEDED), RetryableError, None),
        (Failure(grpc.StatusCode.UNAVAILABLE, retry_after_seconds=7), RetryableError, 7.0),
        (Failure(grpc.StatusCode.RESOURCE_EXHAUSTED), PermanentError, None),
        (Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, retry_after_seconds=3), RetryableError, 3.0),
        (Failure(grpc.StatusCode.INVALID_ARGUMENT), PermanentError, None),
        (Failure(grpc.StatusCode.UNAUTHENTICATED), PermanentError, None),
    ],
)
def test_grpc_exporter_classifies_failures(
    bg_loop: BackgroundLoop,
    grpc_backend: GrpcBackend,
    failure: Failure,
    error: Type[Exception],
    delay: Any,
) -> None:
    grpc_backend.recorder.failures.append(failure)
    with pytest.raises(error) as caught:
        export_once(bg_loop, grpc_exporter(grpc_backend.endpoint))
    assert failure.grpc_code.name in str(caught.value)
    assert "backend failing on purpose" in str(caught.value)
    if error is RetryableError:
        assert caught.value.delay_seconds == delay  # type: ignore[attr-defined]


def test_grpc_exporter_unreachable_backend_is_retryable(bg_loop: BackgroundLoop) -> None:
    exporter = grpc_exporter(f"127.0.0.1:{free_port()}", timeout="2s")
    with pytest.raises(RetryableError, match="UNAVAILABLE"):
        export_once(bg_loop, exporter)


def test_grpc_exporter_ends_an_attempt_at_its_timeout(bg_loop: BackgroundLoop) -> None:
    # The sender does not time gRPC attempts itself (the call's deadline does): a backend
    # that accepts the connection and never answers must still end the attempt, retryably.
    assert OTLPGrpcExporter.enforces_timeout
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        exporter = grpc_exporter(f"127.0.0.1:{silent.getsockname()[1]}", timeout="300ms")
        with pytest.raises(RetryableError, match="DEADLINE_EXCEEDED"):
            export_once(bg_loop, exporter)


# -- otlp_http ---------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["proto", "json"])
@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_http_exporter_delivers(
    bg_loop: BackgroundLoop, http_backend: HttpBackend, encoding: str, compression: str
) -> None:
    exporter = http_exporter(endpoint=http_backend.url, encoding=encoding, compression=compression)
    export_once(bg_loop, exporter)
    assert http_backend.recorder.received() == [make_request()]
    headers = http_backend.recorder.headers[0]
    assert headers["Content-Type"] == (
        "application/json" if encoding == "json" else "application/x-protobuf"
    )
    assert headers.get("Content-Encoding") == ("gzip" if compression == "gzip" else None)
    assert headers["User-Agent"].startswith("otelprof-collector/")


def test_http_exporter_profiles_endpoint_is_used_as_is(
    bg_loop: BackgroundLoop, http_backend: HttpBackend
) -> None:
    exporter = http_exporter(profiles_endpoint=f"{http_backend.url}/v1development/profiles")
    export_once(bg_loop, exporter)
    assert len(http_backend.recorder.received()) == 1


@pytest.mark.parametrize(
    ("failure", "error", "delay"),
    [
        (Failure(http_status=503, retry_after_seconds=4), RetryableError, 4.0),
        (Failure(http_status=429), RetryableError, None),
        (Failure(http_status=502), RetryableError, None),
        (Failure(http_status=504), RetryableError, None),
        (Failure(http_status=400), PermanentError, None),
        (Failure(http_status=401), PermanentError, None),
        (Failure(http_status=500), PermanentError, None),
    ],
)
def test_http_exporter_classifies_failures(
    bg_loop: BackgroundLoop,
    http_backend: HttpBackend,
    failure: Failure,
    error: Type[Exception],
    delay: Any,
) -> None:
    http_backend.recorder.failures.append(failure)
    with pytest.raises(error) as caught:
        export_once(bg_loop, http_exporter(endpoint=http_backend.url))
    assert str(caught.value) == f"HTTP {failure.http_status}: backend failing on purpose"
    if error is RetryableError:
        assert caught.value.delay_seconds == delay  # type: ignore[attr-defined]


def test_http_exporter_unreachable_backend_is_retryable(bg_loop: BackgroundLoop) -> None:
    with pytest.raises(RetryableError, match="cannot reach"):
        export_once(bg_loop, http_exporter(endpoint=f"http://127.0.0.1:{free_port()}"))


def test_retry_after_as_seconds_or_http_date() -> None:
    assert parse_retry_after("12") == 12.0
    now = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now=now) == pytest.approx(30.0)
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


# -- file --------------------------------------------------------------------------------


def file_exporter(**raw: Any) -> FileExporter:
    return FileExporter("file", load_file_config(Node(raw, "exporters::file")))


def test_file_exporter_writes_one_json_request_per_line(
    bg_loop: BackgroundLoop, tmp_path: Path
) -> None:
    path = tmp_path / "out" / "profiles.jsonl"
    exporter = file_exporter(path=str(path))
    requests = [make_request(seed=seed) for seed in range(3)]

    async def go() -> None:
        await exporter.start()
        for request in requests:
            await exporter.export(request.SerializeToString())
        await exporter.shutdown()

    bg_loop.run(go())
    lines = path.read_text().splitlines()
    assert [otlp_json.loads(line) for line in lines] == requests
    assert json.loads(lines[0])["dictionary"]["linkTable"][1]["traceId"] == (
        requests[0].dictionary.link_table[1].trace_id.hex()
    )


def test_file_exporter_rotates_and_keeps_max_backups(
    bg_loop: BackgroundLoop, tmp_path: Path
) -> None:
    path = tmp_path / "profiles.jsonl"
    exporter = file_exporter(path=str(path), rotation={"max_megabytes": 1, "max_backups": 2})
    big = make_request(samples_per_profile=1200)
    line_bytes = len(otlp_json.dumps(big)) + 1
    assert 300_000 < line_bytes < 1024 * 1024 // 2  # so that two lines fit in one file

    async def go() -> None:
        await exporter.start()
        for _ in range(9):
            await exporter.export(big.SerializeToString())
        await exporter.shutdown()

    bg_loop.run(go())
    backups = sorted(tmp_path.glob("profiles-*.jsonl"))
    assert len(backups) == 2
    for file in [*backups, path]:
        assert file.stat().st_size <= 1024 * 1024
        assert all(otlp_json.loads(line) == big for line in file.read_text().splitlines())
    # 9 lines, at most 2 per file: 5 files were written, the 2 oldest rotated ones pruned.
    assert sum(len(f.read_text().splitlines()) for f in [*backups, path]) == 5


def test_file_exporter_rotation_never_leaves_the_path_missing(
    bg_loop: BackgroundLoop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "profiles.jsonl"
    exporter = file_exporter(path=str(path), rotation={"max_megabytes": 1, "max_backups": 2})
    big = make_request(samples_per_profile=1200)
    present: List[bool] = []
    for name in ("link", "replace", "rename", "unlink"):
        real = getattr(os, name)

        def watched(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            result = _real(*args, **kwargs)
            present.append(path.exists())
            return result

        monkeypatch.setattr(f"collector_processor.exporter.file.os.{name}", watched)

    async def go() -> None:
        await exporter.start()
        for _ in range(5):
            await exporter.export(big.SerializeToString())
        await exporter.shutdown()

    bg_loop.run(go())
    monkeypatch.undo()
    assert len(list(tmp_path.glob("profiles-*.jsonl"))) == 2
    assert present and all(present)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
