"""Security: authentication on both transports, size limits (gzip bombs refused by their
decompressed size without being inflated), no request content in answers or logs, owner-only
files. The threat model is docs/security.md."""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import tracemalloc
import zlib
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

import grpc
import pytest
import requests
from collector.harness import (
    EXPORT_METHOD,
    InProcessService,
    ServiceProcess,
    base_config,
    grpc_export,
    http_post,
)
from collector.payloads import make_request
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from collector_processor import otlp_json
from collector_processor.errors import InvalidRequestError
from collector_processor.extension.file_storage import DATABASE_NAME
from collector_processor.receiver.gunzip import MAX_MEMBERS, BodyTooLarge, gunzip_limited

StartService = Callable[..., InProcessService]
TOKEN = "collector-token-0123456789"
SECRET = "sk_live_9f8e7d6c5b4a-PASSWORD-hunter2"
PROTOBUF = "application/x-protobuf"


def with_auth(config: Dict[str, Any]) -> Dict[str, Any]:
    config["extensions"] = {"bearertokenauth": {"token": TOKEN}}
    config["service"]["extensions"] = ["bearertokenauth"]
    for protocol in config["receivers"]["otlp"]["protocols"].values():
        protocol["auth"] = {"authenticator": "bearertokenauth"}
    return config


def file_config(tmp_path: Path, **receiver: Any) -> Dict[str, Any]:
    config = base_config({"file": {"path": str(tmp_path / "out" / "profiles.jsonl")}})
    for protocol in config["receivers"]["otlp"]["protocols"].values():
        protocol.update(receiver)
    return config


# -- authentication --------------------------------------------------------------------------
AUTH_CASES: List[Tuple[str, Tuple[Tuple[str, str], ...], bool]] = [
    ("missing", (), False),
    ("wrong_scheme", (("authorization", f"Basic {TOKEN}"),), False),
    ("wrong_token", (("authorization", "Bearer not-the-token"),), False),
    ("token_without_scheme", (("authorization", TOKEN),), False),
    ("empty_token", (("authorization", "Bearer "),), False),
    ("right", (("authorization", f"Bearer {TOKEN}"),), True),
    ("scheme_case_insensitive", (("authorization", f"bearer {TOKEN}"),), True),
]


@pytest.mark.parametrize(
    ("metadata", "accepted"), [c[1:] for c in AUTH_CASES], ids=[c[0] for c in AUTH_CASES]
)
def test_receivers_refuse_unauthenticated_requests(
    start_service: StartService,
    tmp_path: Path,
    metadata: Tuple[Tuple[str, str], ...],
    accepted: bool,
) -> None:
    service = start_service(with_auth(file_config(tmp_path)))
    body = make_request().SerializeToString()
    code, details, _ = grpc_export(service.grpc_port, body, metadata=metadata)
    headers = {key.title(): value for key, value in metadata}
    response = http_post(service.http_url, body, **headers)
    if accepted:
        assert (code, response.status_code) == (grpc.StatusCode.OK, 200)
    else:
        assert (code, details) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "missing or invalid bearer token",
        )
        assert response.status_code == 401
    # Unauthenticated garbage is refused for the missing token, before anyone decodes it.
    code, _, _ = grpc_export(service.grpc_port, b"\xff\xfe", metadata=metadata)
    status = http_post(service.http_url, b"\xff\xfe", **headers).status_code
    expected = (
        (grpc.StatusCode.INVALID_ARGUMENT, 400)
        if accepted
        else (
            grpc.StatusCode.UNAUTHENTICATED,
            401,
        )
    )
    assert (code, status) == expected


# -- size limits -----------------------------------------------------------------------------
def gzip_bomb(megabytes: int) -> bytes:
    """``megabytes`` MiB of zeros as one gzip member, built a MiB at a time (~1 KB per MiB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1024 * 1024)
    parts = [compressor.compress(zeros) for _ in range(megabytes)]
    return b"".join(parts) + compressor.flush()


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.fixture
def service_process(tmp_path: Path) -> Iterator[ServiceProcess]:
    from collector.backends import free_port

    config = file_config(tmp_path, max_request_body_size=1024 * 1024)
    config["receivers"]["otlp"]["protocols"]["grpc"] = {
        "endpoint": f"127.0.0.1:{free_port()}",
        "max_recv_msg_size_mib": 1,
    }
    config["receivers"]["otlp"]["protocols"]["http"]["endpoint"] = f"127.0.0.1:{free_port()}"
    process = ServiceProcess(config, tmp_path)
    try:
        yield process.start()
    finally:
        process.ensure_stopped()


def endpoints(process: ServiceProcess) -> Tuple[int, str]:
    import yaml

    protocols = yaml.safe_load(process.config_path.read_text())["receivers"]["otlp"]["protocols"]
    grpc_port = int(protocols["grpc"]["endpoint"].rsplit(":", 1)[1])
    http_url = f"http://{protocols['http']['endpoint']}/v1development/profiles"
    return grpc_port, http_url


def test_gzip_bombs_are_refused_by_decompressed_size_without_inflating_them(
    service_process: ServiceProcess,
) -> None:
    """1 MiB limits; a 512 MiB bomb over HTTP and a 64 MiB one over gRPC barely move the peak."""
    assert service_process.process is not None
    pid = service_process.process.pid
    grpc_port, http_url = endpoints(service_process)
    # Warm both paths with valid requests so the baseline includes their buffers.
    body = make_request().SerializeToString()
    assert grpc_export(grpc_port, body)[0] == grpc.StatusCode.OK
    assert http_post(http_url, body).status_code == 200
    baseline = peak_rss_kib(pid)

    bomb = gzip_bomb(512)
    assert len(bomb) < 1024 * 1024  # the compressed body is within the limit
    response = http_post(http_url, bomb, **{"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert b"decompressed body exceeds max_request_body_size" in response.content

    channel = grpc.insecure_channel(
        f"127.0.0.1:{grpc_port}",
        compression=grpc.Compression.Gzip,
        options=[("grpc.max_send_message_length", -1)],
    )
    with channel:
        with pytest.raises(grpc.RpcError) as caught:
            channel.unary_unary(EXPORT_METHOD)(bytes(64 * 1024 * 1024), timeout=60)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Inflating either bomb would have taken 64 MiB or more.
    assert peak_rss_kib(pid) - baseline < 16 * 1024
    assert grpc_export(grpc_port, body)[0] == grpc.StatusCode.OK  # still serving


def test_gunzip_holds_at_most_the_limit_and_caps_members() -> None:
    limit = 1024 * 1024
    bomb = gzip_bomb(256)
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge):
            gunzip_limited(bomb, limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * limit  # the output cap, not 256 MiB
    # A million empty members once took minutes of copying on the event loop (20 MiB body).
    members = gzip_bomb(0) * 1_000_000
    with pytest.raises(InvalidRequestError, match=f"more than {MAX_MEMBERS} members"):
        gunzip_limited(members, 20 * limit)
    assert gunzip_limited(gzip_bomb(1) * MAX_MEMBERS, 64 * limit) == bytes(MAX_MEMBERS * limit)


def test_oversized_bodies_are_refused(service_process: ServiceProcess) -> None:
    grpc_port, http_url = endpoints(service_process)
    too_big = bytes(2 * 1024 * 1024)
    assert http_post(http_url, too_big).status_code == 413
    assert grpc_export(grpc_port, too_big)[0] == grpc.StatusCode.RESOURCE_EXHAUSTED


# -- nothing a client sends is echoed ---------------------------------------------------------
def secret_requests() -> List[Tuple[str, bytes, Dict[str, str]]]:
    """Requests carrying SECRET that must be refused, with their HTTP headers."""
    request = make_request()
    request.resource_profiles[0].resource.attributes.append(
        KeyValue(key="db.password", value=AnyValue(string_value=SECRET))
    )
    request.dictionary.string_table.append(SECRET)
    request.resource_profiles[0].scope_profiles[0].profiles[0].samples[0].stack_index = 999
    bad_index = request.SerializeToString()
    document = json.loads(otlp_json.dumps(request))
    samples = document["resourceProfiles"][0]["scopeProfiles"][0]["profiles"][0]["samples"]
    json_bad_index = json.dumps(document).encode()
    samples[0]["stackIndex"] = SECRET  # a wrong type: json_format's message quotes the value
    json_wrong_type = json.dumps(document).encode()
    samples[0]["values"] = SECRET
    json_not_a_list = json.dumps(document).encode()
    protobuf = {"Content-Type": PROTOBUF}
    return [
        ("protobuf_bad_index", bad_index, protobuf),
        ("json_bad_index", json_bad_index, {"Content-Type": "application/json"}),
        ("json_wrong_type", json_wrong_type, {"Content-Type": "application/json"}),
        ("json_not_a_list", json_not_a_list, {"Content-Type": "application/json"}),
        ("content_type", bad_index, {"Content-Type": f"application/{SECRET}"}),
        ("content_encoding", bad_index, {**protobuf, "Content-Encoding": SECRET}),
        ("bad_gzip", SECRET.encode(), {**protobuf, "Content-Encoding": "gzip"}),
        ("garbage", SECRET.encode() * 3, protobuf),
        ("wrong_token", bad_index, {**protobuf, "Authorization": f"Bearer {SECRET}"}),
    ]


def raw_http(port: int, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def test_request_content_never_reaches_answers_or_logs(
    start_service: StartService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level
    plain = start_service(file_config(tmp_path / "plain"))
    guarded = start_service(with_auth(file_config(tmp_path / "guarded")))
    answers: List[bytes] = []
    for name, body, headers in secret_requests():
        target = guarded if "Authorization" in headers else plain
        response = requests.post(target.http_url, data=body, headers=headers, timeout=20)
        assert response.status_code in (400, 401, 415), name
        answers += [response.content, json.dumps(dict(response.headers)).encode()]
        if headers.get("Content-Type") == PROTOBUF and "Content-Encoding" not in headers:
            metadata = (
                (("authorization", headers["Authorization"]),) if "Authorization" in headers else ()
            )
            code, details, trailing = grpc_export(target.grpc_port, body, metadata=metadata)
            assert code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAUTHENTICATED)
            answers += [details.encode(), repr(trailing).encode()]
    # A valid request carrying the secret as data is accepted, and logged without it.
    accepted = make_request(resource_attributes={"db.password": SECRET}).SerializeToString()
    assert grpc_export(plain.grpc_port, accepted)[0] == grpc.StatusCode.OK
    assert http_post(plain.http_url, accepted).status_code == 200
    for answer in answers:
        assert SECRET.encode() not in answer, answer[:300]
        assert b"hunter2" not in answer, answer[:300]
    assert caplog.records, "nothing was logged: the check would prove nothing"
    assert "hunter2" not in caplog.text


def test_malformed_http_is_logged_without_its_content(
    start_service: StartService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """aiohttp's parser refuses it (400) and logs a traceback quoting the bad line: filtered.

    Its 400 answer still quotes the line back to the same connection (aiohttp gives no hook
    for that answer; docs/security.md lists it): only the sender sees its own bytes.
    """
    caplog.set_level(logging.DEBUG)
    service = start_service(file_config(tmp_path))
    http = service.service.receivers["otlp"].http
    assert http is not None and http.port
    head = (
        "POST /v1development/profiles HTTP/1.1\r\nHost: x\r\n"
        f"X-Api-Key: {SECRET}\x01\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    answer = raw_http(http.port, head.encode())
    assert answer.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400"))
    assert "refused a malformed HTTP request from 127.0.0.1 (BadHttpMessage" in caplog.text
    assert "hunter2" not in caplog.text
    assert all(record.levelno < logging.WARNING for record in caplog.records)


# -- files ---------------------------------------------------------------------------------------
def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_holding_profiles_are_owner_only_whatever_the_umask(
    start_service: StartService, tmp_path: Path
) -> None:
    output = tmp_path / "new" / "profiles.jsonl"
    queue_directory = tmp_path / "queue"
    config = base_config(
        {
            "file": {"path": str(output), "rotation": {"max_megabytes": 1, "max_backups": 3}},
            "otlp_grpc": {
                "endpoint": "127.0.0.1:9",
                "tls": {"insecure": True},
                "sending_queue": {"storage": "file_storage"},
            },
        },
        extensions={"file_storage": {"directory": str(queue_directory), "create_directory": True}},
    )
    previous = os.umask(0)  # the most permissive umask: modes must not depend on it
    try:
        service = start_service(config)
    finally:
        os.umask(previous)
    body = make_request(samples_per_profile=2000).SerializeToString()  # ~0.4 MB of JSON each
    for _ in range(4):
        assert grpc_export(service.grpc_port, body)[0] == grpc.StatusCode.OK
    from collector.backends import wait_until

    backups = lambda: list(output.parent.glob("profiles-*.jsonl"))  # noqa: E731
    wait_until(lambda: len(backups()) >= 1, 30, "a rotation")
    assert mode(output.parent) == 0o700
    for path in [output, *backups()]:
        assert mode(path) == 0o600, path
    assert mode(queue_directory) == 0o700
    for name in (
        DATABASE_NAME,
        f"{DATABASE_NAME}-wal",
        f"{DATABASE_NAME}-shm",
        "otelprof_queue.lock",
    ):
        assert mode(queue_directory / name) == 0o600, name
