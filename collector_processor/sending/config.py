"""``sending_queue`` and ``retry_on_failure`` settings with the Collector's defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from collector_processor.confparse import ConfigError, Node

__all__ = [
    "QueueSettings",
    "RetrySettings",
    "default_queue_settings",
    "default_retry_settings",
    "load_queue_settings",
    "load_retry_settings",
]


@dataclass(frozen=True)
class QueueSettings:
    """A bounded queue drained by ``num_consumers`` workers; durable when ``storage`` is set."""

    enabled: bool = True
    num_consumers: int = 10
    queue_size: int = 1000
    storage: Optional[str] = None

    def validate(self, path: str) -> None:
        if not self.enabled:
            return
        if self.num_consumers <= 0:
            raise ConfigError(f"{path}::num_consumers", "must be > 0")
        if self.queue_size <= 0:
            raise ConfigError(f"{path}::queue_size", "must be > 0")


@dataclass(frozen=True)
class RetrySettings:
    """Exponential backoff between attempts; ``max_elapsed_time_seconds == 0`` retries forever."""

    enabled: bool = True
    initial_interval_seconds: float = 5.0
    max_interval_seconds: float = 30.0
    max_elapsed_time_seconds: float = 300.0
    multiplier: float = 1.5
    randomization_factor: float = 0.5

    def validate(self, path: str) -> None:
        if not self.enabled:
            return
        checks = (
            ("initial_interval", self.initial_interval_seconds),
            ("max_interval", self.max_interval_seconds),
            ("max_elapsed_time", self.max_elapsed_time_seconds),
            ("multiplier", self.multiplier),
            ("randomization_factor", self.randomization_factor),
        )
        for key, value in checks:
            if value < 0:
                raise ConfigError(f"{path}::{key}", "must be >= 0")
        # Stricter than the Collector (which only refuses negatives): a zero interval, or a
        # multiplier that shrinks the wait, retries a down backend in a tight loop.
        for key, value in (
            ("initial_interval", self.initial_interval_seconds),
            ("max_interval", self.max_interval_seconds),
        ):
            if value == 0:
                raise ConfigError(f"{path}::{key}", "must be > 0 (0 retries in a tight loop)")
        if self.multiplier < 1:
            raise ConfigError(
                f"{path}::multiplier", "must be >= 1 (a smaller one shrinks the wait toward 0)"
            )
        if self.randomization_factor > 1:
            raise ConfigError(f"{path}::randomization_factor", "must be <= 1")
        if self.max_elapsed_time_seconds > 0:
            for key, value in (
                ("initial_interval", self.initial_interval_seconds),
                ("max_interval", self.max_interval_seconds),
            ):
                if self.max_elapsed_time_seconds < value:
                    raise ConfigError(
                        f"{path}::max_elapsed_time",
                        f"must not be less than {key} (use 0s to retry forever)",
                    )


def default_queue_settings() -> QueueSettings:
    return QueueSettings()


def default_retry_settings() -> RetrySettings:
    return RetrySettings()


def load_queue_settings(node: Node) -> QueueSettings:
    defaults = default_queue_settings()
    sizer = node.string("sizer", "requests")
    if sizer != "requests":
        raise ConfigError(node.key_path("sizer"), f'only "requests" is supported, got "{sizer}"')
    settings = QueueSettings(
        enabled=node.boolean("enabled", defaults.enabled),
        num_consumers=node.integer("num_consumers", defaults.num_consumers),
        queue_size=node.integer("queue_size", defaults.queue_size),
        storage=node.optional_string("storage"),
    )
    node.finish()
    return settings


def load_retry_settings(node: Node) -> RetrySettings:
    defaults = default_retry_settings()
    settings = RetrySettings(
        enabled=node.boolean("enabled", defaults.enabled),
        initial_interval_seconds=node.duration(
            "initial_interval", defaults.initial_interval_seconds
        ),
        max_interval_seconds=node.duration("max_interval", defaults.max_interval_seconds),
        max_elapsed_time_seconds=node.duration(
            "max_elapsed_time", defaults.max_elapsed_time_seconds
        ),
        multiplier=node.number("multiplier", defaults.multiplier),
        randomization_factor=node.number("randomization_factor", defaults.randomization_factor),
    )
    node.finish()
    return settings
