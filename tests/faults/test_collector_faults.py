"""The agent against a collector that is absent, refusing, hanging, slow, failing or mismatched.

Every case runs the steady app under ``otelprof run`` with real processes and a real loopback
endpoint, and checks the same promises: the app's output is the bare run's, its exit code
passes through, the export queue never holds more than its size, and the process exits
within the shutdown deadline after the app's last line even though the exporter's own
timeout is 30 s.
"""

from __future__ import annotations

import contextlib
import pathlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional

import grpc
import pytest

from tests.export.certs import TlsFiles, make_tls_files
from tests.export.servers import (
    GrpcFailure,
    HttpFailure,
    RecordingGrpcServer,
    RecordingHttpServer,
    ServerTLS,
)
from tests.faults.harness import (
    EXPORTER_TIMEOUT_MILLIS,
    QUEUE_SIZE,
    SHUTDOWN_TIMEOUT_SECONDS,
    AppRun,
    assert_exit_within_deadline,
    free_port,
    no_agent_traceback,
    run_bare,
    start_profiled,
)
from tests.faults.netfaults import ResettingEndpoint, SlowRelay

PROTOCOLS = ("grpc", "http/protobuf")
HTTP_PATH = "/v1development/profiles"
FOREVER = 10_000  # scripted failures: more than any test run will use

pytestmark = pytest.mark.timeout(120)

Events = List[Dict[str, Any]]


def _count(events: Events, status: str) -> int:
    return sum(1 for e in events if e["event"] == "export" and e["status"] == status)


@dataclass
class Collector:
    """One fault, set up: where the agent sends, what extra env, and when the fault has hit."""

    endpoint: str
    ready: Callable[[Events], bool]
    env: Dict[str, str]
    server: Optional[Any] = None


@pytest.fixture(scope="module")
def bare() -> AppRun:
    run = run_bare("steady_app.py")
    assert run.returncode == 3, run.stderr
    return run


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(pathlib.Path(tmp_path_factory.mktemp("tls")))


def _server(protocol: str, tls: Optional[ServerTLS] = None) -> Any:
    return RecordingGrpcServer(tls) if protocol == "grpc" else RecordingHttpServer(tls)


def _url(protocol: str, scheme: str, port: int) -> str:
    base = f"{scheme}://127.0.0.1:{port}"
    return base if protocol == "grpc" else base + HTTP_PATH


def _status_count_at_least(status: str, n: int) -> Callable[[Events], bool]:
    return lambda events: _count(events, status) >= n


def _attempted(server: Any) -> Callable[[Events], bool]:
    return lambda events: server.attempts >= 1


@contextlib.contextmanager
def collector(fault: str, protocol: str, tls: TlsFiles) -> Iterator[Collector]:
    """Start the collector side of ``fault`` for ``protocol``; stop it afterwards."""
    retrying = _status_count_at_least("RETRYABLE", 3)
    if fault == "absent":
        yield Collector(_url(protocol, "http", free_port()), retrying, {})
    elif fault in ("refusing", "erroring", "recovering", "hanging"):
        with _server(protocol) as server:
            ready = retrying
            if fault == "refusing":
                server.set_failures(
                    [GrpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "bad profile")] * FOREVER
                    if protocol == "grpc"
                    else [HttpFailure(400, body=b"bad profile")] * FOREVER
                )
                ready = _status_count_at_least("PERMANENT", 3)
            elif fault in ("erroring", "recovering"):
                failures = 4 if fault == "recovering" else FOREVER
                server.set_failures(
                    [GrpcFailure(grpc.StatusCode.UNAVAILABLE)] * failures
                    if protocol == "grpc"
                    else [HttpFailure(503)] * failures
                )
                if fault == "recovering":
                    ready = _status_count_at_least("SUCCESS", 1)
            else:
                server.hang()
                ready = _attempted(server)
            yield Collector(server.endpoint, ready, {}, server)
    elif fault == "slow":
        with _server(protocol) as server, SlowRelay(server.port, 0.2) as relay:
            ready = _status_count_at_least("SUCCESS", 1)
            yield Collector(_url(protocol, "http", relay.port), ready, {}, server)
    elif fault == "resetting":
        with ResettingEndpoint() as endpoint:
            yield Collector(_url(protocol, "http", endpoint.port), retrying, {})
    elif fault == "tls_server_plain_client":
        with _server(protocol, ServerTLS(tls.server_cert, tls.server_key)) as server:
            yield Collector(_url(protocol, "http", server.port), retrying, {}, server)
    elif fault == "plain_server_tls_client":
        with _server(protocol) as server:
            env = {"OTEL_EXPORTER_OTLP_PROFILES_CERTIFICATE": tls.ca_cert}
            yield Collector(_url(protocol, "https", server.port), retrying, env, server)
    else:
        raise ValueError(fault)


FAULTS = (
    "absent",
    "refusing",
    "hanging",
    "slow",
    "erroring",
    "recovering",
    "resetting",
    "tls_server_plain_client",
    "plain_server_tls_client",
)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("fault", FAULTS)
def test_app_is_unaffected_memory_bounded_and_exit_on_time(
    fault: str, protocol: str, bare: AppRun, tls: TlsFiles, tmp_path: pathlib.Path
) -> None:
    with collector(fault, protocol, tls) as target:
        app = start_profiled(
            "steady_app.py",
            tmp_path,
            ["--endpoint", target.endpoint, "--protocol", protocol],
            env=target.env,
        )
        app.wait_for_line("waiting")
        app.wait_for_events(target.ready)
        run = app.finish()

    # The application: same output, same exit code, no traceback from the agent.
    assert run.stdout == bare.stdout, run.stderr
    assert run.returncode == bare.returncode, run.stderr
    assert no_agent_traceback(run.stderr), run.stderr
    # Memory: the export queue never held more than its size.
    stats = run.stats
    assert stats["queue_size"] == QUEUE_SIZE
    assert stats["queue_high_water"] <= QUEUE_SIZE, stats
    # Shutdown: within the deadline, not the exporter's 30 s timeout.
    assert_exit_within_deadline(run, SHUTDOWN_TIMEOUT_SECONDS)
    assert stats["shutdown_seconds"] < SHUTDOWN_TIMEOUT_SECONDS + 1.0, stats
    assert EXPORTER_TIMEOUT_MILLIS / 1000 > SHUTDOWN_TIMEOUT_SECONDS + 20  # the test can fail

    _FAULT_CHECKS[fault](run, stats, target)
    print(
        f"FIGURE {fault} {protocol}: exit {run.exit_seconds:.2f}s after the last line, "
        f"shutdown {stats['shutdown_seconds']:.2f}s, queue high-water "
        f"{stats['queue_high_water']}/{stats['queue_size']}, dropped {stats['dropped_requests']}, "
        f"failed {stats['failed_requests']}, exported {stats['exported_requests']}, "
        f"attempts {len(run.exports)}"
    )


def _never_delivered(run: AppRun, stats: Dict[str, Any], target: Collector) -> None:
    """Nothing got through, the queue filled and dropped the oldest with one counted warning."""
    assert stats["exported_requests"] == 0, stats
    assert stats["dropped_requests"] >= 1, stats
    assert run.stderr.count("export queue full (2 requests)") == 1, run.stderr


def _refused(run: AppRun, stats: Dict[str, Any], target: Collector) -> None:
    """Permanent errors: each profile is dropped at once (never queued for retry), logged once."""
    assert stats["exported_requests"] == 0, stats
    assert stats["failed_requests"] >= 3, stats
    assert stats["dropped_requests"] == 0, stats
    assert run.stderr.count("export refused, profile dropped") == 1, run.stderr
    assert "bad profile" in run.stderr  # the server's reason reaches the user


def _hung(run: AppRun, stats: Dict[str, Any], target: Collector) -> None:
    """The worker is stuck in the hung call: the deadline ends the wait and says so."""
    assert stats["exported_requests"] == 0, stats
    assert "did not finish within the 1.0s shutdown deadline" in run.stderr, run.stderr


def _delivered(run: AppRun, stats: Dict[str, Any], target: Collector) -> None:
    assert stats["exported_requests"] >= 1, stats


def _recovered(run: AppRun, stats: Dict[str, Any], target: Collector) -> None:
    assert target.server is not None
    assert target.server.attempts >= 4 + 1  # the 4 failures, then at least one success
    assert stats["exported_requests"] >= 1, stats


_FAULT_CHECKS: Dict[str, Callable[[AppRun, Dict[str, Any], Collector], None]] = {
    "absent": _never_delivered,
    "refusing": _refused,
    "hanging": _hung,
    "slow": _delivered,
    "erroring": _never_delivered,
    "recovering": _recovered,
    "resetting": _never_delivered,
    "tls_server_plain_client": _never_delivered,
    "plain_server_tls_client": _never_delivered,
}
