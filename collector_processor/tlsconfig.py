"""TLS settings for receivers (server) and exporters (client), as the Collector's configtls."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from collector_processor.confparse import ConfigError, Node, join_path

__all__ = [
    "ClientTLS",
    "ServerTLS",
    "load_client_tls",
    "load_server_tls",
    "read_file",
]


@dataclass(frozen=True)
class ServerTLS:
    """Certificate and key the receiver presents; ``client_ca_file`` turns on mutual TLS."""

    cert_file: str
    key_file: str
    client_ca_file: Optional[str] = None

    def validate(self, path: str) -> None:
        if not self.cert_file:
            raise ConfigError(join_path(path, "cert_file"), "required when tls is set")
        if not self.key_file:
            raise ConfigError(join_path(path, "key_file"), "required when tls is set")
        for key in ("cert_file", "key_file", "client_ca_file"):
            _check_file(join_path(path, key), getattr(self, key))

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_file, self.key_file)
        if self.client_ca_file:
            context.load_verify_locations(self.client_ca_file)
            context.verify_mode = ssl.CERT_REQUIRED
        return context


@dataclass(frozen=True)
class ClientTLS:
    """How an exporter reaches its backend: plaintext (``insecure``) or verified TLS."""

    insecure: bool = False
    insecure_skip_verify: bool = False
    ca_file: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None
    server_name_override: Optional[str] = None

    def validate(self, path: str) -> None:
        if bool(self.cert_file) != bool(self.key_file):
            missing = "key_file" if self.cert_file else "cert_file"
            raise ConfigError(
                join_path(path, missing), "cert_file and key_file must be set together"
            )
        for key in ("ca_file", "cert_file", "key_file"):
            _check_file(join_path(path, key), getattr(self, key))

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.insecure_skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert_file and self.key_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


def read_file(path: str) -> bytes:
    """Read a certificate or key file; the error names the file."""
    return Path(path).read_bytes()


def _check_file(path: str, value: Optional[str]) -> None:
    if value is not None and not Path(value).is_file():
        raise ConfigError(path, f"file {value!r} does not exist")


def load_server_tls(node: Node) -> ServerTLS:
    cert_file = node.optional_string("cert_file")
    key_file = node.optional_string("key_file")
    client_ca_file = node.optional_string("client_ca_file")
    node.finish()
    config = ServerTLS(
        cert_file=cert_file or "", key_file=key_file or "", client_ca_file=client_ca_file
    )
    config.validate(node.path)
    return config


def load_client_tls(node: Node) -> ClientTLS:
    tls = ClientTLS(
        insecure=node.boolean("insecure", False),
        insecure_skip_verify=node.boolean("insecure_skip_verify", False),
        ca_file=node.optional_string("ca_file"),
        cert_file=node.optional_string("cert_file"),
        key_file=node.optional_string("key_file"),
        server_name_override=node.optional_string("server_name_override"),
    )
    node.finish()
    tls.validate(node.path)
    return tls
