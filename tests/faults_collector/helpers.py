"""What the fault tests share: clients that remember what was accepted, queue and memory probes."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import grpc
import requests
from collector.harness import EXPORT_METHOD, InProcessService
from collector.payloads import make_request
from google.rpc import error_details_pb2, status_pb2

from collector_processor.extension.file_storage import DATABASE_NAME

FAST_RETRY = {"initial_interval": "20ms", "max_interval": "200ms", "max_elapsed_time": "0s"}
RETRYABLE_GRPC = {grpc.StatusCode.UNAVAILABLE}
RETRYABLE_HTTP = {503}
# How gRPC words the transport failing under a killed service: the connection refused or
# reset, or a stream cut while being written ("Stream removed (sendmsg: Broken pipe (32))",
# seen once in a fresh-clone run of test_kill9).
TRANSPORT_WORDS = ("connect", "socket", "reset", "closed", "eof", "broken pipe", "stream removed")


def grpc_exporter(port: int, **settings: object) -> Dict[str, object]:
    """An ``otlp_grpc`` exporter to 127.0.0.1:port that retries forever, quickly."""
    return {
        "endpoint": f"127.0.0.1:{port}",
        "tls": {"insecure": True},
        "retry_on_failure": FAST_RETRY,
        **settings,
    }


def retry_delay_seconds(trailing: object) -> Optional[int]:
    """The RetryInfo delay in a gRPC error's trailing metadata, if any."""
    for key, value in trailing or ():  # type: ignore[attr-defined]
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.RetryInfo()
                if detail.Unpack(info):
                    return int(info.retry_delay.seconds)
    return None


class Outcome:
    """One attempt: accepted, refused with a retryable answer, or something else (a bug)."""

    def __init__(self, ok: bool, retryable: bool, detail: str) -> None:
        self.ok = ok
        self.retryable = retryable
        self.detail = detail

    def __repr__(self) -> str:
        return f"Outcome(ok={self.ok}, retryable={self.retryable}, {self.detail!r})"


class Client:
    """Sends numbered requests over gRPC (even seeds) and HTTP (odd); remembers what got OK.

    Retryable answers are checked to carry their retry delay (RetryInfo / Retry-After).
    Connection failures (a killed service) count as retryable, as an agent would treat them.
    """

    def __init__(self, grpc_port: int, http_port: int, samples_per_profile: int = 12) -> None:
        self.grpc_port = grpc_port
        self.http_url = f"http://127.0.0.1:{http_port}/v1development/profiles"
        self.samples_per_profile = samples_per_profile
        self.accepted: List[int] = []
        self.refused: List[Tuple[int, str]] = []
        self.unexpected: List[Tuple[int, str]] = []
        self._lock = threading.Lock()
        self._channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        self._export = self._channel.unary_unary(EXPORT_METHOD)
        self._session = requests.Session()

    def close(self) -> None:
        self._channel.close()
        self._session.close()

    def body(self, seed: int) -> bytes:
        request = make_request(seed=seed, samples_per_profile=self.samples_per_profile)
        return bytes(request.SerializeToString())

    def send(self, seed: int) -> Outcome:
        outcome = self._send_grpc(seed) if seed % 2 == 0 else self._send_http(seed)
        with self._lock:
            if outcome.ok:
                self.accepted.append(seed)
            elif outcome.retryable:
                self.refused.append((seed, outcome.detail))
            else:
                self.unexpected.append((seed, outcome.detail))
        return outcome

    def _send_grpc(self, seed: int) -> Outcome:
        try:
            self._export(self.body(seed), timeout=30)
        except grpc.RpcError as error:
            code = error.code()
            details = error.details() or ""
            if code == grpc.StatusCode.UNAVAILABLE:
                if retry_delay_seconds(error.trailing_metadata()) is not None:
                    return Outcome(False, True, f"UNAVAILABLE+RetryInfo {details}")
                # No server to ask (killed, restarting): the transport says so, no RetryInfo.
                if any(word in details.lower() for word in TRANSPORT_WORDS):
                    return Outcome(False, True, f"UNAVAILABLE (transport) {details}")
            return Outcome(False, False, f"{code} {details}")
        return Outcome(True, False, "OK")

    def _send_http(self, seed: int) -> Outcome:
        try:
            response = self._session.post(
                self.http_url,
                data=self.body(seed),
                headers={"Content-Type": "application/x-protobuf"},
                timeout=30,
            )
        except requests.ConnectionError as error:
            return Outcome(False, True, f"connection error {type(error).__name__}")
        if response.status_code == 200:
            return Outcome(True, False, "OK")
        message = status_pb2.Status.FromString(response.content).message
        if response.status_code in RETRYABLE_HTTP:
            retry_after = response.headers.get("Retry-After", "")
            return Outcome(False, retry_after.isdigit(), f"503 Retry-After={retry_after} {message}")
        return Outcome(False, False, f"HTTP {response.status_code} {message}")


def client_for(service: InProcessService, samples_per_profile: int = 12) -> Client:
    http = service.service.receivers["otlp"].http
    assert http is not None and http.port
    return Client(service.grpc_port, http.port, samples_per_profile)


def queue_rows(directory: Path, table: str) -> int:
    """Rows in a persistent queue's table, read through a separate SQLite connection."""
    connection = sqlite3.connect(f"file:{directory / DATABASE_NAME}?mode=ro", uri=True)
    try:
        quoted = '"' + table.replace('"', '""') + '"'
        return int(connection.execute(f"SELECT COUNT(*) FROM {quoted}").fetchone()[0])
    finally:
        connection.close()


def rss_kib(pid: int) -> int:
    """Resident memory of a process (``VmRSS`` in ``/proc/<pid>/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")
