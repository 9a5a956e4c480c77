"""Configuration of the ``otlp`` receiver: gRPC and HTTP protocols, sizes, TLS and auth."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Tuple

from collector_processor.confparse import ConfigError, Node, join_path
from collector_processor.tlsconfig import ServerTLS, load_server_tls

__all__ = [
    "GrpcServerConfig",
    "HttpServerConfig",
    "OTLPReceiverConfig",
    "default_config",
    "load_config",
    "port_number",
    "split_endpoint",
]

MIB = 1024 * 1024
_PORT = re.compile(r"[0-9]+")  # ASCII digits: str.isdigit() also accepts "²", which int() refuses
MAX_PORT = 65535


@dataclass(frozen=True)
class GrpcServerConfig:
    endpoint: str = "localhost:4317"
    max_recv_msg_size_mib: int = 4
    tls: Optional[ServerTLS] = None
    authenticator: Optional[str] = None

    def validate(self, path: str) -> None:
        split_endpoint(self.endpoint, join_path(path, "endpoint"))
        if self.max_recv_msg_size_mib <= 0:
            raise ConfigError(join_path(path, "max_recv_msg_size_mib"), "must be > 0")


@dataclass(frozen=True)
class HttpServerConfig:
    endpoint: str = "localhost:4318"
    max_request_body_size: int = 20 * MIB
    profiles_url_path: str = "/v1development/profiles"
    tls: Optional[ServerTLS] = None
    authenticator: Optional[str] = None

    def validate(self, path: str) -> None:
        split_endpoint(self.endpoint, join_path(path, "endpoint"))
        if self.max_request_body_size <= 0:
            raise ConfigError(join_path(path, "max_request_body_size"), "must be > 0")
        if not self.profiles_url_path.startswith("/"):
            raise ConfigError(join_path(path, "profiles_url_path"), "must start with /")


@dataclass(frozen=True)
class OTLPReceiverConfig:
    """A protocol is on when its key is present (even empty), as in the Collector."""

    grpc: Optional[GrpcServerConfig] = None
    http: Optional[HttpServerConfig] = None

    def validate(self, path: str) -> None:
        if self.grpc is None and self.http is None:
            raise ConfigError(
                join_path(path, "protocols"), "must specify at least one protocol (grpc or http)"
            )
        if self.grpc is not None:
            self.grpc.validate(join_path(path, "protocols", "grpc"))
        if self.http is not None:
            self.http.validate(join_path(path, "protocols", "http"))


def default_config() -> OTLPReceiverConfig:
    return OTLPReceiverConfig(grpc=GrpcServerConfig(), http=HttpServerConfig())


def split_endpoint(endpoint: str, path: str) -> Tuple[str, int]:
    """``host:port`` (``[::1]:port``, ``:port`` = all interfaces) into a bindable pair."""
    host, sep, port_text = endpoint.rpartition(":")
    if not sep or not _PORT.fullmatch(port_text):
        raise ConfigError(path, f'"{endpoint}" must be host:port')
    port = port_number(port_text)
    if port is None:
        raise ConfigError(
            path, f'"{endpoint}": port {port_text} out of range (1-65535, or 0 for a free port)'
        )
    host = host.strip("[]") or "0.0.0.0"
    return host, port


def port_number(text: str) -> Optional[int]:
    """The port ``text`` (ASCII digits) names, or None past 65535."""
    # Length first: int() refuses strings of thousands of digits with its own error.
    if len(text) > len(str(MAX_PORT)) or int(text) > MAX_PORT:
        return None
    return int(text)


def _load_auth(node: Node) -> Optional[str]:
    if not node.has("auth"):
        return None
    auth = node.child("auth")
    authenticator = auth.string("authenticator", "")
    auth.finish()
    if not authenticator:
        raise ConfigError(auth.key_path("authenticator"), "required when auth is set")
    return authenticator


def _load_tls(node: Node) -> Optional[ServerTLS]:
    if not node.has("tls"):
        node.get("tls")
        return None
    return load_server_tls(node.child("tls"))


def _load_grpc(node: Node) -> GrpcServerConfig:
    defaults = GrpcServerConfig()
    config = GrpcServerConfig(
        endpoint=node.string("endpoint", defaults.endpoint),
        max_recv_msg_size_mib=node.integer("max_recv_msg_size_mib", defaults.max_recv_msg_size_mib),
        tls=_load_tls(node),
        authenticator=_load_auth(node),
    )
    node.finish()
    return config


def _load_http(node: Node) -> HttpServerConfig:
    defaults = HttpServerConfig()
    config = HttpServerConfig(
        endpoint=node.string("endpoint", defaults.endpoint),
        max_request_body_size=node.integer("max_request_body_size", defaults.max_request_body_size),
        profiles_url_path=node.string("profiles_url_path", defaults.profiles_url_path),
        tls=_load_tls(node),
        authenticator=_load_auth(node),
    )
    node.finish()
    return config


def load_config(node: Node) -> OTLPReceiverConfig:
    protocols = node.child("protocols")
    grpc = _load_grpc(protocols.child("grpc")) if protocols.has("grpc") else None
    http = _load_http(protocols.child("http")) if protocols.has("http") else None
    protocols.get("grpc")
    protocols.get("http")
    protocols.finish()
    node.finish()
    config = OTLPReceiverConfig(grpc=grpc, http=http)
    config.validate(node.path)
    return config
