"""Configuration of the ``file_storage``, ``health_check`` and ``bearertokenauth`` extensions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple, Union

from collector_processor.confparse import ConfigError, Node, join_path
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

    def validate(self, path: str) -> None:
        if not self.directory:
            raise ConfigError(join_path(path, "directory"), "required")


@dataclass(frozen=True)
class HealthCheckConfig:
    endpoint: str = "localhost:13133"
    path: str = "/"

    def validate(self, path: str) -> None:
        split_endpoint(self.endpoint, join_path(path, "endpoint"))
        if not self.path.startswith("/"):
            raise ConfigError(join_path(path, "path"), "must start with /")


@dataclass(frozen=True)
class BearerTokenAuthConfig:
    """Accepted tokens; the ``Authorization`` header must read ``<scheme> <token>``."""

    scheme: str = "Bearer"
    tokens: Tuple[str, ...] = ()
    filename: Optional[str] = None

    def validate(self, path: str) -> None:
        if self.filename is not None and self.tokens:
            raise ConfigError(path, "set either token/tokens or filename, not both")
        if self.filename is None and not self.tokens:
            raise ConfigError(join_path(path, "token"), "required (or tokens, or filename)")
        if any(not token.strip() for token in self.tokens):
            raise ConfigError(join_path(path, "tokens"), "tokens must not be empty")
        if self.filename is not None and not Path(self.filename).is_file():
            raise ConfigError(join_path(path, "filename"), f"file {self.filename!r} does not exist")


ExtensionConfig = Union[FileStorageConfig, HealthCheckConfig, BearerTokenAuthConfig]


def load_file_storage_config(node: Node) -> FileStorageConfig:
    defaults = FileStorageConfig()
    config = FileStorageConfig(
        directory=node.string("directory", defaults.directory),
        create_directory=node.boolean("create_directory", defaults.create_directory),
        fsync=node.boolean("fsync", defaults.fsync),
    )
    node.finish()
    config.validate(node.path)
    return config


def load_health_check_config(node: Node) -> HealthCheckConfig:
    defaults = HealthCheckConfig()
    config = HealthCheckConfig(
        endpoint=node.string("endpoint", defaults.endpoint),
        path=node.string("path", defaults.path),
    )
    node.finish()
    config.validate(node.path)
    return config


def load_bearertokenauth_config(node: Node) -> BearerTokenAuthConfig:
    token = node.string("token", "")
    tokens = node.string_list("tokens", [])
    filename = node.optional_string("filename")
    scheme = node.string("scheme", "Bearer")
    node.finish()
    config = BearerTokenAuthConfig(
        scheme=scheme, tokens=(*([token] if token else []), *tokens), filename=filename
    )
    config.validate(node.path)
    return config
