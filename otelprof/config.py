"""Frozen profiler configuration, resolved explicit argument -> environment -> default."""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, TypeVar

from otelprof import environment_variables as ev

_logger = logging.getLogger("otelprof")

T = TypeVar("T")

PROTOCOLS = ("grpc", "http/protobuf")
COMPRESSIONS = ("none", "gzip")
DEFAULT_GRPC_ENDPOINT = "http://localhost:4317"
DEFAULT_HTTP_ENDPOINT = "http://localhost:4318"
HTTP_PROFILES_PATH = "/v1development/profiles"


class ConfigError(ValueError):
    """An explicit configuration argument is invalid; the message names it and why."""


@dataclass(frozen=True)
class ExporterConfig:
    """Where and how exports are sent (the standard ``OTEL_EXPORTER_OTLP_*`` settings)."""

    protocol: str = "grpc"
    # gRPC: ``http(s)://host:port``; HTTP: the full URL of the profiles path.
    endpoint: str = DEFAULT_GRPC_ENDPOINT
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: float = 10.0
    compression: str = "none"
    certificate_file: Optional[str] = None
    client_key_file: Optional[str] = None
    client_certificate_file: Optional[str] = None
    # None: decided by the endpoint's scheme (http -> plaintext, https -> TLS).
    insecure: Optional[bool] = None

    @property
    def use_tls(self) -> bool:
        """TLS unless told ``insecure`` or given an ``http://`` endpoint."""
        if self.insecure is not None:
            return not self.insecure
        return not self.endpoint.startswith("http://")


@dataclass(frozen=True)
class ProfilerConfig:
    """Every setting of the agent; build it with :func:`resolve_config`."""

    sampling_rate_hz: float = 100.0
    export_interval_seconds: float = 10.0
    max_stack_depth: int = 128
    output_dir: Optional[str] = None
    queue_size: int = 16
    shutdown_timeout_seconds: float = 5.0
    service_name: Optional[str] = None
    resource_attributes: Mapping[str, str] = field(default_factory=dict)
    exporter: ExporterConfig = field(default_factory=ExporterConfig)

    def replace(self, **changes: object) -> ProfilerConfig:
        """Return a copy with ``changes`` applied and validated."""
        new = dataclasses.replace(self, **changes)  # type: ignore[arg-type]
        validate(new)
        return new


_RANGES: Dict[str, tuple[float, float]] = {
    "sampling_rate_hz": (1.0, 1000.0),
    "export_interval_seconds": (0.1, 3600.0),
    "max_stack_depth": (1, 4096),
    "queue_size": (1, 10000),
    "shutdown_timeout_seconds": (0.0, 600.0),
}


def validate(config: ProfilerConfig) -> None:
    """Raise :class:`ConfigError` naming the first setting that is out of range."""
    for name, (low, high) in _RANGES.items():
        value = getattr(config, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        if not low <= value <= high:
            raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {value!r}")
    exporter = config.exporter
    if exporter.protocol not in PROTOCOLS:
        raise ConfigError(
            f"protocol must be one of {', '.join(PROTOCOLS)}, got {exporter.protocol!r}"
        )
    if exporter.compression not in COMPRESSIONS:
        raise ConfigError(
            f"compression must be one of {', '.join(COMPRESSIONS)}, got {exporter.compression!r}"
        )
    if not 0 < exporter.timeout_seconds <= 600:
        raise ConfigError(
            f"timeout must be between 0 and 600 seconds, got {exporter.timeout_seconds!r}"
        )
    if not exporter.endpoint.startswith(("http://", "https://")):
        raise ConfigError(
            f"endpoint must start with http:// or https://, got {exporter.endpoint!r}"
        )


# --- environment parsing: a bad value logs once and falls back ------------------------------


def _warn_bad(name: str, raw: str, reason: str, default: object) -> None:
    _logger.warning("otelprof: ignoring %s=%r (%s); using %r", name, raw, reason, default)


def _env_number(
    environ: Mapping[str, str], name: str, default: T, parse: Callable[[str], T], key: str
) -> T:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    low, high = _RANGES[key]
    try:
        value = parse(raw)
    except ValueError:
        _warn_bad(name, raw, "not a number", default)
        return default
    if not low <= value <= high:  # type: ignore[operator]
        _warn_bad(name, raw, f"must be between {low:g} and {high:g}", default)
        return default
    return value


def env_bool(environ: Mapping[str, str], name: str, default: bool = False) -> bool:
    """Parse a boolean the way OpenTelemetry does (``true``/``false``, case-insensitive)."""
    raw = environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("true", "1", "yes", "on"):
        return True
    if raw in ("false", "0", "no", "off"):
        return False
    _warn_bad(name, raw, "expected true or false", default)
    return default


def _otlp_env(environ: Mapping[str, str], suffix: str) -> tuple[str, Optional[str]]:
    """Profiles-specific ``OTEL_EXPORTER_OTLP_PROFILES_X`` first, then ``OTEL_EXPORTER_OTLP_X``."""
    for name in (f"OTEL_EXPORTER_OTLP_PROFILES_{suffix}", f"OTEL_EXPORTER_OTLP_{suffix}"):
        raw = environ.get(name, "").strip()
        if raw:
            return name, raw
    return "", None


def parse_headers(raw: str) -> Dict[str, str]:
    """Parse ``k1=v1,k2=v2`` (values URL-decoded, as the OTLP spec says); skip malformed pairs."""
    from urllib.parse import unquote

    headers: Dict[str, str] = {}
    for pair in raw.split(","):
        if not pair.strip():
            continue
        key, sep, value = pair.partition("=")
        key = unquote(key.strip()).lower()
        if not sep or not key:
            _logger.warning(
                "otelprof: ignoring malformed OTLP header %r (expected key=value)", pair
            )
            continue
        headers[key] = unquote(value.strip())
    return headers


def _resolve_exporter(environ: Mapping[str, str], explicit: Mapping[str, object]) -> ExporterConfig:
    default = ExporterConfig()
    protocol = explicit.get("protocol")
    if protocol is None:
        name, raw = _otlp_env(environ, "PROTOCOL")
        protocol = default.protocol
        if raw is not None:
            if raw in PROTOCOLS:
                protocol = raw
            else:
                _warn_bad(name, raw, f"supported: {', '.join(PROTOCOLS)}", default.protocol)

    endpoint = explicit.get("endpoint")
    if endpoint is None:
        specific = environ.get("OTEL_EXPORTER_OTLP_PROFILES_ENDPOINT", "").strip()
        generic = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        if specific:
            endpoint = specific
        elif generic:
            # The generic endpoint is a base URL: HTTP appends the signal's path.
            endpoint = generic.rstrip("/") + HTTP_PROFILES_PATH if protocol != "grpc" else generic
        else:
            endpoint = (
                DEFAULT_GRPC_ENDPOINT
                if protocol == "grpc"
                else DEFAULT_HTTP_ENDPOINT + HTTP_PROFILES_PATH
            )
    elif (
        protocol != "grpc"
        and isinstance(endpoint, str)
        and not endpoint.rstrip("/").endswith(HTTP_PROFILES_PATH)
    ):
        # An explicit base URL such as http://collector:4318 means the standard profiles path.
        endpoint = endpoint.rstrip("/") + HTTP_PROFILES_PATH

    if isinstance(endpoint, str) and "://" not in endpoint:
        # ``host:port`` without a scheme: TLS unless told insecure (the OpenTelemetry SDK's rule).
        insecure_hint = explicit.get("insecure")
        if insecure_hint is None:
            name, raw = _otlp_env(environ, "INSECURE")
            insecure_hint = env_bool({name: raw}, name, False) if raw is not None else False
        endpoint = ("http://" if insecure_hint else "https://") + endpoint

    headers = explicit.get("headers")
    if headers is None:
        _, raw = _otlp_env(environ, "HEADERS")
        headers = parse_headers(raw) if raw else {}

    timeout = explicit.get("timeout_seconds")
    if timeout is None:
        name, raw = _otlp_env(environ, "TIMEOUT")
        timeout = default.timeout_seconds
        if raw is not None:
            # The OTLP spec gives this variable in milliseconds.
            try:
                millis = float(raw)
                if not 0 < millis <= 600_000:
                    raise ValueError
                timeout = millis / 1000.0
            except ValueError:
                _warn_bad(name, raw, "expected milliseconds between 1 and 600000", 10_000)

    compression = explicit.get("compression")
    if compression is None:
        name, raw = _otlp_env(environ, "COMPRESSION")
        compression = default.compression
        if raw is not None:
            if raw.lower() in COMPRESSIONS:
                compression = raw.lower()
            else:
                _warn_bad(name, raw, "supported: gzip, none", default.compression)

    insecure = explicit.get("insecure")
    if insecure is None:
        name, raw = _otlp_env(environ, "INSECURE")
        insecure = env_bool({name: raw}, name, False) if raw is not None else None

    files: Dict[str, Optional[str]] = {}
    for key, suffix in (
        ("certificate_file", "CERTIFICATE"),
        ("client_key_file", "CLIENT_KEY"),
        ("client_certificate_file", "CLIENT_CERTIFICATE"),
    ):
        value = explicit.get(key)
        if value is None:
            _, value = _otlp_env(environ, suffix)
        files[key] = value if isinstance(value, str) else None

    return ExporterConfig(
        protocol=str(protocol),
        endpoint=str(endpoint),
        headers=dict(headers),  # type: ignore[call-overload]
        timeout_seconds=float(timeout),  # type: ignore[arg-type]
        compression=str(compression),
        insecure=insecure if isinstance(insecure, bool) else None,
        **files,
    )


_EXPORTER_KEYS = frozenset(
    {
        "protocol",
        "endpoint",
        "headers",
        "timeout_seconds",
        "compression",
        "insecure",
        "certificate_file",
        "client_key_file",
        "client_certificate_file",
    }
)


def resolve_config(environ: Optional[Mapping[str, str]] = None, **explicit: Any) -> ProfilerConfig:
    """Build the configuration: explicit arguments win, then the environment, then defaults.

    A bad environment value logs one warning and keeps the default; a bad explicit argument
    raises :class:`ConfigError` here, once, naming the argument.
    """
    env = os.environ if environ is None else environ
    explicit = {k: v for k, v in explicit.items() if v is not None}
    unknown = set(explicit) - _EXPORTER_KEYS - {f.name for f in dataclasses.fields(ProfilerConfig)}
    if unknown:
        raise ConfigError(f"unknown configuration argument(s): {', '.join(sorted(unknown))}")
    default = ProfilerConfig()
    exporter = _resolve_exporter(env, {k: v for k, v in explicit.items() if k in _EXPORTER_KEYS})

    def pick(key: str, env_name: str, parse: Callable[[str], T]) -> T:
        if key in explicit:
            value: T = explicit[key]
            return value
        fallback: T = getattr(default, key)
        return _env_number(env, env_name, fallback, parse, key)

    output_dir = explicit.get("output_dir") or env.get(ev.OTEL_PYTHON_PROFILER_OUTPUT_DIR) or None
    resource_attributes = explicit.get("resource_attributes") or {}
    config = ProfilerConfig(
        sampling_rate_hz=pick("sampling_rate_hz", ev.OTEL_PYTHON_PROFILER_SAMPLING_RATE, float),
        export_interval_seconds=pick(
            "export_interval_seconds", ev.OTEL_PYTHON_PROFILER_EXPORT_INTERVAL, float
        ),
        max_stack_depth=pick("max_stack_depth", ev.OTEL_PYTHON_PROFILER_MAX_STACK_DEPTH, int),
        output_dir=str(output_dir) if output_dir else None,
        queue_size=pick("queue_size", ev.OTEL_PYTHON_PROFILER_QUEUE_SIZE, int),
        shutdown_timeout_seconds=pick(
            "shutdown_timeout_seconds", ev.OTEL_PYTHON_PROFILER_SHUTDOWN_TIMEOUT, float
        ),
        service_name=explicit.get("service_name") or None,
        resource_attributes=dict(resource_attributes),
        exporter=exporter,
    )
    validate(config)
    return config
