"""Configuration of the ``file_storage``, ``health_check`` and ``bearertokenauth`` extensions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple, Union

from collector_processor.confparse import ConfigError, Node
from collector_processor.receiver.config import split_endpoint

__all__ = [
    "BearerTokenAuthConfig",
    "ExtensionConfig",
    "FileStorageConfig",
    "HealthCheckConfig",
    "load_bearertokenauth_config",
    "load_file_storage_config",
    "load_health_check_config",
]


@dataclass(frozen=True)
class FileStorageConfig:
    """Where persistent sending queues live (one SQLite database per extension)."""

    directory: str = "/var/lib/otelcol/file_storage"
    create_directory: bool = False
    fsync: bool = True


@dataclass(frozen=True)
class HealthCheckConfig:
    endpoint: str = "localhost:13133"
    path: str = "/"


@dataclass(frozen=True)
class BearerTokenAuthConfig:
    """Accepted tokens; the ``Authorization`` header must read ``<scheme> <token>``."""

    scheme: str = "Bearer"
    tokens: Tuple[str, ...] = ()
    filename: Optional[str] = None


ExtensionConfig = Union[FileStorageConfig, HealthCheckConfig, BearerTokenAuthConfig]


def load_file_storage_config(node: Node) -> FileStorageConfig:
    defaults = FileStorageConfig()
    config = FileStorageConfig(
        directory=node.string("directory", defaults.directory),
        create_directory=node.boolean("create_directory", defaults.create_directory),
        fsync=node.boolean("fsync", defaults.fsync),
    )
    node.finish()
    if not config.directory:
        raise ConfigError(node.key_path("directory"), "required")
    return config


def load_health_check_config(node: Node) -> HealthCheckConfig:
    defaults = HealthCheckConfig()
    config = HealthCheckConfig(
        endpoint=node.string("endpoint", defaults.endpoint),
        path=node.string("path", defaults.path),
    )
    node.finish()
    split_endpoint(config.endpoint, node.key_path("endpoint"))
    if not config.path.startswith("/"):
        raise ConfigError(node.key_path("path"), "must start with /")
    return config


def load_bearertokenauth_config(node: Node) -> BearerTokenAuthConfig:
    token = node.string("token", "")
    tokens = node.string_list("tokens", [])
    filename = node.optional_string("filename")
    scheme = node.string("scheme", "Bearer")
    node.finish()
    all_tokens = tuple(t for t in ([token] if token else []) + tokens)
    if filename is not None and all_tokens:
        raise ConfigError(node.path, "set either token/tokens or filename, not both")
    if filename is None and not all_tokens:
        raise ConfigError(node.key_path("token"), "required (or tokens, or filename)")
    if any(not t.strip() for t in tokens):
        raise ConfigError(node.key_path("tokens"), "tokens must not be empty")
    if filename is not None and not Path(filename).is_file():
        raise ConfigError(node.key_path("filename"), f"file {filename!r} does not exist")
    return BearerTokenAuthConfig(scheme=scheme, tokens=all_tokens, filename=filename)
