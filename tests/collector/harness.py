"""Running the collector for tests: in-process on a background loop, or as a real subprocess,
plus small synchronous OTLP clients."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import grpc
import requests
import yaml

from collector_processor.app import Service
from collector_processor.config import parse_config

from .backends import BackgroundLoop, free_port, wait_until

EXPORT_METHOD = "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export"
REPO_ROOT = Path(__file__).resolve().parents[2]


def base_config(
    exporters: Dict[str, Any],
    *,
    processors: Optional[Dict[str, Any]] = None,
    extensions: Optional[Dict[str, Any]] = None,
    receiver: Optional[Dict[str, Any]] = None,
    grpc_port: int = 0,
    http_port: int = 0,
    metrics_port: Optional[int] = None,
) -> Dict[str, Any]:
    """A one-pipeline config with an otlp receiver on loopback and the given components."""
    config: Dict[str, Any] = {
        "receivers": {
            "otlp": receiver
            or {
                "protocols": {
                    "grpc": {"endpoint": f"127.0.0.1:{grpc_port}"},
                    "http": {"endpoint": f"127.0.0.1:{http_port}"},
                }
            }
        },
        "exporters": exporters,
        "extensions": extensions or {},
        "processors": processors or {},
        "service": {
            "extensions": list(extensions or {}),
            "pipelines": {
                "profiles": {
                    "receivers": ["otlp"],
                    "processors": list(processors or {}),
                    "exporters": list(exporters),
                }
            },
        },
    }
    if metrics_port is not None:
        config["service"]["telemetry"] = {"metrics": {"address": f"127.0.0.1:{metrics_port}"}}
    return config


class InProcessService:
    """A :class:`Service` started on a background loop; ports are the ones really bound."""

    def __init__(self, loop: BackgroundLoop, config: Dict[str, Any], shutdown_timeout: float = 2.0):
        self.loop = loop
        self.service = Service(parse_config(config), shutdown_timeout_seconds=shutdown_timeout)

    def start(self) -> InProcessService:
        self.loop.run(self.service.start())
        return self

    def stop(self) -> None:
        self.loop.run(self.service.shutdown(), timeout=60)

    @property
    def grpc_port(self) -> int:
        server = self.service.receivers["otlp"].grpc
        assert server is not None and server.port
        return server.port

    @property
    def http_url(self) -> str:
        server = self.service.receivers["otlp"].http
        assert server is not None and server.port
        return f"http://127.0.0.1:{server.port}/v1development/profiles"


def grpc_export(
    port: int,
    body: bytes,
    *,
    metadata: Sequence[Tuple[str, str]] = (),
    credentials: Optional[grpc.ChannelCredentials] = None,
    target_host: str = "127.0.0.1",
) -> Tuple[grpc.StatusCode, str, Any]:
    """One raw Export call; returns (code, details, trailing metadata)."""
    target = f"{target_host}:{port}"
    channel = (
        grpc.secure_channel(target, credentials) if credentials else grpc.insecure_channel(target)
    )
    with channel:
        call = channel.unary_unary(EXPORT_METHOD)
        try:
            call(body, metadata=tuple(metadata), timeout=20)
        except grpc.RpcError as error:
            return error.code(), error.details(), error.trailing_metadata()
    return grpc.StatusCode.OK, "", ()


def http_post(
    url: str, body: bytes, content_type: str = "application/x-protobuf", **headers: str
) -> requests.Response:
    return requests.post(
        url, data=body, headers={"Content-Type": content_type, **headers}, timeout=20
    )


BIND_ATTEMPTS = 3


class ServiceProcess:
    """``python -m collector_processor --config FILE`` as a child process on loopback ports."""

    def __init__(self, config: Dict[str, Any], directory: Path, name: str = "collector") -> None:
        self.health_port = free_port()
        config = dict(config)
        config.setdefault("extensions", {})
        config["extensions"] = {
            **config["extensions"],
            "health_check": {"endpoint": f"127.0.0.1:{self.health_port}"},
        }
        service = dict(config["service"])
        service["extensions"] = [*service.get("extensions", []), "health_check"]
        config["service"] = service
        self.config_path = directory / f"{name}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = directory / f"{name}.log"
        self.process: Optional[subprocess.Popen[bytes]] = None

    def start(self, extra_args: Sequence[str] = ()) -> ServiceProcess:
        # A port picked free (or kept for a restart) can be taken in between by any process on
        # the machine, for a moment (a client's ephemeral port): try again a few times then.
        for _ in range(BIND_ATTEMPTS - 1):
            try:
                return self._start_once(extra_args)
            except AssertionError as error:
                if "address already in use" not in str(error):
                    raise
                self.ensure_stopped()
        return self._start_once(extra_args)

    def _start_once(self, extra_args: Sequence[str]) -> ServiceProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "collector_processor",
                "--config",
                str(self.config_path),
                *extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()
        wait_until(self.healthy, 30, f"collector health (log: {self.log()})")
        return self

    def healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"collector exited with {self.process.returncode}: {self.log()}")
        try:
            return (
                requests.get(f"http://127.0.0.1:{self.health_port}/", timeout=1).status_code == 200
            )
        except requests.RequestException:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def terminate(self, timeout: float = 60) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def ensure_stopped(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
