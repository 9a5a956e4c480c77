"""Configuration of the ``otlp_grpc``, ``otlp_http`` and ``file`` exporters, with their defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Union
from urllib.parse import urlparse

from collector_processor.confparse import ConfigError, Node
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


@dataclass(frozen=True)
class SendingSettings:
    """What every exporter shares: per-attempt timeout, queue and retry."""

    timeout_seconds: float
    queue: QueueSettings = field(default_factory=QueueSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)


@dataclass(frozen=True)
class OTLPGrpcExporterConfig:
    endpoint: str = ""
    headers: Dict[str, str] = field(default_factory=dict)
    compression: str = "gzip"
    tls: ClientTLS = field(default_factory=ClientTLS)
    sending: SendingSettings = field(default_factory=lambda: SendingSettings(5.0))


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


@dataclass(frozen=True)
class FileExporterConfig:
    path: str = ""
    format: str = "json"
    rotation: bool = False
    max_megabytes: int = 100
    max_backups: int = 100
    sending: SendingSettings = field(default_factory=lambda: SendingSettings(5.0))


ExporterConfig = Union[OTLPGrpcExporterConfig, OTLPHttpExporterConfig, FileExporterConfig]


def default_otlp_grpc_config() -> OTLPGrpcExporterConfig:
    return OTLPGrpcExporterConfig()


def default_otlp_http_config() -> OTLPHttpExporterConfig:
    return OTLPHttpExporterConfig()


def default_file_config() -> FileExporterConfig:
    return FileExporterConfig()


def _load_sending(node: Node, default_timeout_seconds: float) -> SendingSettings:
    timeout_seconds = node.duration("timeout", default_timeout_seconds)
    if timeout_seconds <= 0:
        raise ConfigError(node.key_path("timeout"), "must be > 0")
    return SendingSettings(
        timeout_seconds=timeout_seconds,
        queue=load_queue_settings(node.child("sending_queue")),
        retry=load_retry_settings(node.child("retry_on_failure")),
    )


def _compression(node: Node, default: str) -> str:
    value = node.string("compression", default) or "none"
    if value not in COMPRESSIONS:
        raise ConfigError(
            node.key_path("compression"), f'unsupported compression "{value}" (use gzip or none)'
        )
    return value


def _headers(node: Node) -> Dict[str, str]:
    headers = node.string_map("headers")
    for name in headers:
        if not name or any(ch.isspace() or ch == ":" for ch in name):
            raise ConfigError(node.key_path("headers"), f'invalid header name "{name}"')
    return headers


def load_otlp_grpc_config(node: Node) -> OTLPGrpcExporterConfig:
    defaults = default_otlp_grpc_config()
    endpoint = node.string("endpoint", defaults.endpoint)
    tls = load_client_tls(node.child("tls"))
    config = OTLPGrpcExporterConfig(
        endpoint=endpoint,
        headers=_headers(node),
        compression=_compression(node, defaults.compression),
        tls=tls,
        sending=_load_sending(node, defaults.sending.timeout_seconds),
    )
    node.finish()
    if not endpoint:
        raise ConfigError(node.key_path("endpoint"), "required (host:port of the OTLP/gRPC server)")
    target = endpoint.split("://", 1)[-1]
    if ":" not in target or not target.rsplit(":", 1)[1].isdigit():
        raise ConfigError(node.key_path("endpoint"), f'"{endpoint}" must be host:port')
    return config


def _check_url(node: Node, key: str, value: str) -> None:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(node.key_path(key), f'"{value}" must be an http:// or https:// URL')


def load_otlp_http_config(node: Node) -> OTLPHttpExporterConfig:
    defaults = default_otlp_http_config()
    encoding = node.string("encoding", defaults.encoding)
    config = OTLPHttpExporterConfig(
        endpoint=node.string("endpoint", defaults.endpoint),
        profiles_endpoint=node.string("profiles_endpoint", defaults.profiles_endpoint),
        headers=_headers(node),
        compression=_compression(node, defaults.compression),
        encoding=encoding,
        tls=load_client_tls(node.child("tls")),
        sending=_load_sending(node, defaults.sending.timeout_seconds),
    )
    node.finish()
    if encoding not in HTTP_ENCODINGS:
        raise ConfigError(node.key_path("encoding"), f'must be proto or json, got "{encoding}"')
    if not config.endpoint and not config.profiles_endpoint:
        raise ConfigError(node.key_path("endpoint"), "required (or set profiles_endpoint)")
    if config.endpoint:
        _check_url(node, "endpoint", config.endpoint)
    if config.profiles_endpoint:
        _check_url(node, "profiles_endpoint", config.profiles_endpoint)
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
    if not config.path:
        raise ConfigError(node.key_path("path"), "required")
    if config.format != "json":
        raise ConfigError(
            node.key_path("format"), f'only "json" is supported, got "{config.format}"'
        )
    if config.max_megabytes <= 0:
        raise ConfigError(rotation.key_path("max_megabytes"), "must be > 0")
    if config.max_backups < 0:
        raise ConfigError(rotation.key_path("max_backups"), "must be >= 0")
    return config
