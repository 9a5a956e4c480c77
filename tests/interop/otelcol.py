"""Build, configure, start and stop the real OpenTelemetry Collector for interop tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build_otelcol.sh"
FEATURE_GATES = "--feature-gates=service.profilesSupport"
# A cold build downloads the Collector's modules and compiles them: minutes on two cores.
BUILD_TIMEOUT_SECONDS = 1500


class CollectorError(RuntimeError):
    """The Collector could not be built or did not come up."""


def build_otelcol(log_path: Path) -> Path:
    """Run scripts/build_otelcol.sh (a no-op once cached) and return the binary it prints."""
    with log_path.open("wb") as log:
        completed = subprocess.run(
            ["bash", str(BUILD_SCRIPT)],
            stdout=subprocess.PIPE,
            stderr=log,
            timeout=BUILD_TIMEOUT_SECONDS,
            check=False,
        )
    lines = completed.stdout.decode().strip().splitlines()
    if completed.returncode != 0 or not lines:
        tail = log_path.read_text(errors="replace")[-4000:]
        raise CollectorError(f"{BUILD_SCRIPT} failed ({completed.returncode}):\n{tail}")
    binary = Path(lines[-1])
    if not os.access(binary, os.X_OK):
        raise CollectorError(f"{BUILD_SCRIPT} printed {binary}, which is not executable")
    return binary


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
            raise CollectorError(
                f"process exited with {process.returncode} before listening:\n"
                + log_path.read_text(errors="replace")[-4000:]
            )
        pending = [port for port in pending if not port_open(port)]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise CollectorError(f"ports {pending} not open after {timeout_seconds}s")
        time.sleep(0.05)


def stop_process(process: subprocess.Popen[bytes], grace_seconds: float = 15.0) -> None:
    """SIGTERM (the Collector drains its pipelines on it), then SIGKILL after the grace period."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def collector_config(
    grpc_port: int,
    http_port: int,
    exporters: Mapping[str, Any],
    with_memory_limiter: bool = True,
) -> Dict[str, Any]:
    """OTLP receiver on both protocols -> (memory_limiter) -> the given exporters."""
    processors: Dict[str, Any] = {}
    if with_memory_limiter:
        processors["memory_limiter"] = {"check_interval": "1s", "limit_mib": 512}
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
            # Internal metrics would bind :8888; tests only use the ports they chose.
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


class RunningCollector:
    """One Collector process on loopback ports; `stop()` is safe to call twice."""

    def __init__(self, binary: Path, workdir: Path, exporters: Mapping[str, Any]) -> None:
        self.grpc_port = free_port()
        self.http_port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "otelcol.yaml"
        self.log_path = workdir / "otelcol.log"
        config = collector_config(self.grpc_port, self.http_port, exporters)
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.command: List[str] = [str(binary), "--config", str(self.config_path), FEATURE_GATES]
        self._log = self.log_path.open("wb")
        self.process: Optional[subprocess.Popen[bytes]] = subprocess.Popen(
            self.command, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
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


def start_collector(
    binary: Path, workdir: Path, exporters: Mapping[str, Any], attempts: int = 3
) -> RunningCollector:
    """Start and wait for readiness; a port taken between choosing and binding means retry."""
    for attempt in range(1, attempts + 1):
        collector = RunningCollector(binary, workdir / f"attempt-{attempt}", exporters)
        try:
            collector.wait_ready()
        except CollectorError:
            collector.stop()
            if "address already in use" in collector.log_text() and attempt < attempts:
                continue
            raise
        return collector
    raise AssertionError("unreachable")
