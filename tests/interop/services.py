"""Start the services of a chain (the real Collector, collector_processor) on loopback ports."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import yaml

from .otelcol import FEATURE_GATES, REPO_ROOT


class ServiceError(RuntimeError):
    """A service did not come up."""


def free_port() -> int:
    """A port the kernel just handed out on 127.0.0.1 (released for the child to bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for_ports(
    ports: Sequence[int], process: subprocess.Popen[bytes], log_path: Path, timeout_seconds: float
) -> None:
    """Poll until every port accepts connections; fail early if the process dies."""
    deadline = time.monotonic() + timeout_seconds
    pending = list(ports)
    while pending:
        if process.poll() is not None:
            raise ServiceError(
                f"process exited with {process.returncode} before listening:\n"
                + log_path.read_text(errors="replace")[-4000:]
            )
        pending = [port for port in pending if not port_open(port)]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise ServiceError(f"ports {pending} not open after {timeout_seconds}s")
        time.sleep(0.05)


def stop_process(process: subprocess.Popen[bytes], grace_seconds: float = 20.0) -> None:
    """SIGTERM (both services drain their queues on it), then SIGKILL after the grace period."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def pipeline_config(
    grpc_port: int,
    http_port: int,
    exporters: Mapping[str, Any],
    processors: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """OTLP receiver (gRPC + HTTP) -> processors -> exporters, in the dialect both services read."""
    processors = dict(processors or {})
    return {
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": f"127.0.0.1:{grpc_port}"},
                    "http": {"endpoint": f"127.0.0.1:{http_port}"},
                }
            }
        },
        "processors": processors,
        "exporters": dict(exporters),
        "service": {
            # The Collector's internal metrics would bind :8888; use only the ports chosen here.
            "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "info"}},
            "pipelines": {
                "profiles": {
                    "receivers": ["otlp"],
                    "processors": list(processors),
                    "exporters": list(exporters),
                }
            },
        },
    }


def memory_limiter() -> Dict[str, Any]:
    return {"memory_limiter": {"check_interval": "1s", "limit_mib": 512}}


def grpc_exporter(endpoint: str) -> Dict[str, Any]:
    """`otlp_grpc` exporter settings for a plaintext loopback backend, retrying quickly."""
    return {
        "endpoint": endpoint,
        "tls": {"insecure": True},
        "retry_on_failure": {"initial_interval": "100ms", "max_interval": "1s"},
    }


def http_exporter(endpoint: str) -> Dict[str, Any]:
    """`otlp_http` exporter settings; it POSTs to {endpoint}/v1development/profiles."""
    return {
        "endpoint": endpoint,
        "retry_on_failure": {"initial_interval": "100ms", "max_interval": "1s"},
    }


class RunningService:
    """One service process on loopback ports; `stop()` is safe to call twice."""

    def __init__(
        self,
        command: Sequence[str],
        workdir: Path,
        exporters: Mapping[str, Any],
        processors: Optional[Mapping[str, Any]],
    ) -> None:
        self.grpc_port = free_port()
        self.http_port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "config.yaml"
        self.log_path = workdir / "service.log"
        config = pipeline_config(self.grpc_port, self.http_port, exporters, processors)
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.command: List[str] = [*command, "--config", str(self.config_path)]
        self._log = self.log_path.open("wb")
        self.process: Optional[subprocess.Popen[bytes]] = subprocess.Popen(
            self.command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO_ROOT,
        )

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def wait_ready(self, timeout_seconds: float = 60.0) -> None:
        assert self.process is not None
        # Receivers start last, so open receiver ports mean the pipeline is up.
        wait_for_ports(
            [self.grpc_port, self.http_port], self.process, self.log_path, timeout_seconds
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None
        self._log.close()


def otelcol_command(binary: Path) -> List[str]:
    return [str(binary), FEATURE_GATES]


def collector_processor_command() -> List[str]:
    return [sys.executable, "-m", "collector_processor"]


def start_service(
    command: Sequence[str],
    workdir: Path,
    exporters: Mapping[str, Any],
    processors: Optional[Mapping[str, Any]] = None,
    attempts: int = 3,
) -> RunningService:
    """Start and wait for readiness; a port taken between choosing and binding means retry."""
    for attempt in range(1, attempts + 1):
        service = RunningService(command, workdir / f"attempt-{attempt}", exporters, processors)
        try:
            service.wait_ready()
        except ServiceError:
            service.stop()
            if "address already in use" in service.log_text().lower() and attempt < attempts:
                continue
            raise
        return service
    raise AssertionError("unreachable")
