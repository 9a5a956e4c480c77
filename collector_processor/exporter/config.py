"""Configuration of the ``otlp_grpc``, ``otlp_http`` and ``file`` exporters, with their defaults."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, Union
from urllib.parse import urlparse

from collector_processor.confparse import ConfigError, Node, join_path
from collector_processor.receiver.config import port_number
from collector_processor.sending.config import (
    QueueSettings,
    RetrySettings,
    load_queue_settings,
    load_retry_settings,
)
from collector_processor.tlsconfig import ClientTLS, load_client_tls

__all__ = [
    "ExporterConfig",
    "FileExporterConfig",
    "OTLPGrpcExporterConfig",
    "OTLPHttpExporterConfig",
    "SendingSettings",
    "default_file_config",
    "default_otlp_grpc_config",
    "default_otlp_http_config",
    "load_file_config",
    "load_otlp_grpc_config",
    "load_otlp_http_config",
]

COMPRESSIONS = ("gzip", "none")
HTTP_ENCODINGS = ("proto", "json")
PROFILES_PATH = "/v1development/profiles"
_PORT = re.compile(r"[0-9]+")  # ASCII digits: str.isdigit() also accepts "²"


@dataclass(frozen=True)
class SendingSettings:
    """What every exporter shares: per-attempt timeout, queue and retry."""

    timeout_seconds: float
    queue: QueueSettings = field(default_factory=QueueSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)

    def validate(self, path: str) -> None:
        if self.timeout_seconds <= 0:
            raise ConfigError(join_path(path, "timeout"), "must be > 0")
        self.queue.validate(join_path(path, "sending_queue"))
        self.retry.validate(join_path(path, "retry_on_failure"))


def _check_client(path: str, compression: str, headers: Dict[str, str]) -> None:
    if compression not in COMPRESSIONS:
        raise ConfigError(
            join_path(path, "compression"),
            f'unsupported compression "{compression}" (use gzip or none)',
        )
    for name in headers:
        if not name or any(ch.isspace() or ch == ":" for ch in name):
            raise ConfigError(join_path(path, "headers"), f'invalid header name "{name}"')


def _check_url(path: str, value: str) -> None:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(path, f'"{value}" must be an http:// or https:// URL')


@dataclass(frozen=True)
class OTLPGrpcExporterConfig:
    endpoint: str = ""
    headers: Dict[str, str] = field(default_factory=dict)
    compression: str = "gzip"
    tls: ClientTLS = field(default_factory=ClientTLS)
    sending: SendingSettings = field(default_factory=lambda: SendingSettings(5.0))

    def validate(self, path: str) -> None:
        _check_client(path, self.compression, self.headers)
        self.sending.validate(path)
        key = join_path(path, "endpoint")
        if not self.endpoint:
            raise ConfigError(key, "required (host:port of the OTLP/gRPC server)")
        target = self.endpoint.split("://", 1)[-1]
        port_text = target.rpartition(":")[2]
        if ":" not in target or not _PORT.fullmatch(port_text):
            raise ConfigError(key, f'"{self.endpoint}" must be host:port')
        if not port_number(port_text):  # port 0 cannot be connected to
            raise ConfigError(key, f'"{self.endpoint}": port {port_text} out of range (1-65535)')


@dataclass(frozen=True)
class OTLPHttpExporterConfig:
    endpoint: str = ""
    profiles_endpoint: str = ""
    headers: Dict[str, str] = field(default_factory=dict)
    compression: str = "gzip"
    encoding: str = "proto"
    tls: ClientTLS = field(default_factory=ClientTLS)
    sending: SendingSettings = field(default_factory=lambda: SendingSettings(30.0))

    @property
    def url(self) -> str:
        """Where requests go: ``profiles_endpoint`` as given, else ``endpoint`` + the OTLP path."""
        if self.profiles_endpoint:
            return self.profiles_endpoint
        return self.endpoint.rstrip("/") + PROFILES_PATH

    def validate(self, path: str) -> None:
        _check_client(path, self.compression, self.headers)
        self.sending.validate(path)
        if self.encoding not in HTTP_ENCODINGS:
            raise ConfigError(
                join_path(path, "encoding"), f'must be proto or json, got "{self.encoding}"'
            )
        if not self.endpoint and not self.profiles_endpoint:
            raise ConfigError(join_path(path, "endpoint"), "required (or set profiles_endpoint)")
        if self.endpoint:
            _check_url(join_path(path, "endpoint"), self.endpoint)
        if self.profiles_endpoint:
            _check_url(join_path(path, "profiles_endpoint"), self.profiles_endpoint)


@dataclass(frozen=True)
class FileExporterConfig:
    path: str = ""
    format: str = "json"
    rotation: bool = False
    max_megabytes: int = 100
    max_backups: int = 100
    sending: SendingSettings = field(default_factory=lambda: SendingSettings(5.0))

    def validate(self, path: str) -> None:
        self.sending.validate(path)
        if not self.path:
            raise ConfigError(join_path(path, "path"), "required")
        if self.format != "json":
            raise ConfigError(
                join_path(path, "format"), f'only "json" is supported, got "{self.format}"'
            )
        if self.max_megabytes <= 0:
            raise ConfigError(join_path(path, "rotation", "max_megabytes"), "must be > 0")
        if self.max_backups < 0:
            raise ConfigError(join_path(path, "rotation", "max_backups"), "must be >= 0")


ExporterConfig = Union[OTLPGrpcExporterConfig, OTLPHttpExporterConfig, FileExporterConfig]


def default_otlp_grpc_config() -> OTLPGrpcExporterConfig:
    return OTLPGrpcExporterConfig()


def default_otlp_http_config() -> OTLPHttpExporterConfig:
    return OTLPHttpExporterConfig()


def default_file_config() -> FileExporterConfig:
    return FileExporterConfig()


def _load_sending(node: Node, default_timeout_seconds: float) -> SendingSettings:
    return SendingSettings(
        timeout_seconds=node.duration("timeout", default_timeout_seconds),
        queue=load_queue_settings(node.child("sending_queue")),
        retry=load_retry_settings(node.child("retry_on_failure")),
    )


def load_otlp_grpc_config(node: Node) -> OTLPGrpcExporterConfig:
    defaults = default_otlp_grpc_config()
    config = OTLPGrpcExporterConfig(
        endpoint=node.string("endpoint", defaults.endpoint),
        headers=node.string_map("headers"),
        compression=node.string("compression", defaults.compression) or "none",
        tls=load_client_tls(node.child("tls")),
        sending=_load_sending(node, defaults.sending.timeout_seconds),
    )
    node.finish()
    config.validate(node.path)
    return config


def load_otlp_http_config(node: Node) -> OTLPHttpExporterConfig:
    defaults = default_otlp_http_config()
    config = OTLPHttpExporterConfig(
        endpoint=node.string("endpoint", defaults.endpoint),
        profiles_endpoint=node.string("profiles_endpoint", defaults.profiles_endpoint),
        headers=node.string_map("headers"),
        compression=node.string("compression", defaults.compression) or "none",
        encoding=node.string("encoding", defaults.encoding),
        tls=load_client_tls(node.child("tls")),
        sending=_load_sending(node, defaults.sending.timeout_seconds),
    )
    node.finish()
    config.validate(node.path)
    return config


def load_file_config(node: Node) -> FileExporterConfig:
    defaults = default_file_config()
    rotation = node.child("rotation")
    config = FileExporterConfig(
        path=node.string("path", defaults.path),
        format=node.string("format", defaults.format),
        # As the Collector's file exporter: no rotation unless a rotation section is present.
        rotation=node.has("rotation"),
        max_megabytes=rotation.integer("max_megabytes", defaults.max_megabytes),
        max_backups=rotation.integer("max_backups", defaults.max_backups),
        sending=_load_sending(node, defaults.sending.timeout_seconds),
    )
    rotation.finish()
    node.finish()
    config.validate(node.path)
    return config
