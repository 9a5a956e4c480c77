"""The services under test: their configs, how they start, and their CPU and memory from /proc."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")

# Attributes a gateway typically stamps on everything it forwards (insert + upsert + a hash),
# so the resource processor does real work on every request.
RESOURCE_ACTIONS: List[Dict[str, Any]] = [
    {"key": "deployment.environment.name", "value": "bench", "action": "insert"},
    {"key": "k8s.cluster.name", "value": "bench-cluster", "action": "upsert"},
    {"key": "host.name", "action": "hash"},
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Subject:
    """One configuration of one service, started fresh for every run."""

    name: str
    kind: str  # "otelcol" or "collector_processor"
    resource_processor: bool
    compression: str = "gzip"  # the default of both services' OTLP exporters

    def config(self, grpc_port: int, backend: str) -> Dict[str, Any]:
        processors: Dict[str, Any] = {}
        if self.resource_processor:
            processors["resource"] = {"attributes": RESOURCE_ACTIONS}
        exporter = {
            "endpoint": backend,
            "tls": {"insecure": True},
            "compression": self.compression,
            # Both services default to an in-memory queue of 1000 requests, 10 consumers.
            "sending_queue": {"enabled": True, "num_consumers": 10, "queue_size": 1000},
        }
        return {
            "receivers": {
                "otlp": {
                    "protocols": {
                        "grpc": {"endpoint": f"127.0.0.1:{grpc_port}", "max_recv_msg_size_mib": 64}
                    }
                }
            },
            "processors": processors,
            "exporters": {"otlp_grpc": exporter},
            "service": {
                "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "warn"}},
                "pipelines": {
                    "profiles": {
                        "receivers": ["otlp"],
                        "processors": list(processors),
                        "exporters": ["otlp_grpc"],
                    }
                },
            },
        }

    def command(self, config_path: Path, otelcol_binary: Path) -> List[str]:
        if self.kind == "otelcol":
            return [
                str(otelcol_binary),
                "--config",
                str(config_path),
                "--feature-gates=service.profilesSupport",
            ]
        return [sys.executable, "-m", "collector_processor", "--config", str(config_path)]


class RunningSubject:
    """A started service; CPU seconds and memory come from /proc (all its threads)."""

    def __init__(self, command: List[str], log_path: Path, port: int) -> None:
        self.port = port
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO_ROOT
        )
        deadline = time.monotonic() + 60
        while not _port_open(port):
            if self.process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited: {log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} did not listen on {port}")
            time.sleep(0.05)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
        return (utime + stime) / _TICKS_PER_SECOND

    def peak_rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM in /proc status")

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/task"))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_subject(
    subject: Subject, workdir: Path, backend: str, otelcol_binary: Path
) -> RunningSubject:
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / f"{subject.name}.yaml"
    config_path.write_text(yaml.safe_dump(subject.config(port, backend), sort_keys=False))
    return RunningSubject(
        subject.command(config_path, otelcol_binary), workdir / f"{subject.name}.log", port
    )
