"""Frozen profiler configuration, resolved explicit argument -> environment -> default."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Tuple, TypeVar

from otelprof import environment_variables as ev

_logger = logging.getLogger("otelprof")

T = TypeVar("T")

PROTOCOLS = ("grpc", "http/protobuf")
COMPRESSIONS = ("none", "gzip")
DEFAULT_GRPC_ENDPOINT = "http://localhost:4317"
DEFAULT_HTTP_ENDPOINT = "http://localhost:4318"
HTTP_PROFILES_PATH = "/v1development/profiles"
_SCHEMES = ("http://", "https://")


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
        """The scheme decides, as in the OTLP spec and the Python SDK: ``https://`` is TLS.

        ``insecure`` only matters for an endpoint given without a scheme, and
        :func:`resolve_config` has already turned that into an ``http://`` or ``https://`` one.
        """
        return self.endpoint.startswith("https://")


@dataclass(frozen=True)
class ProfilerConfig:
    """Every setting of the agent; build it with :func:`resolve_config`."""

    sampling_rate_hz: float = 100.0
    adaptive_rate: bool = True
    export_interval_seconds: float = 10.0
    max_stack_depth: int = 128
    output_dir: Optional[str] = None
    queue_size: int = 16
    shutdown_timeout_seconds: float = 5.0
    service_name: Optional[str] = None
    resource_attributes: Mapping[str, str] = field(default_factory=dict)
    exporter: ExporterConfig = field(default_factory=ExporterConfig)
    # Precise (yappi) and memory (tracemalloc) windows, GC, overhead governor: docs/windows.md.
    precise_window_seconds: float = 0.5
    precise_interval_seconds: float = 600.0
    precise_clock: str = "wall"
    memory_window_seconds: float = 0.5
    memory_interval_seconds: float = 3600.0
    memory_traceback_depth: int = 8
    memory_overhead_cap_mib: float = 16.0
    memory_snapshot_interval_seconds: float = 10.0
    leak_min_windows: int = 5
    leak_min_bytes_per_second: float = 1024.0
    overhead_budget: float = 0.01
    window_signal: Optional[str] = None
    gc_profiling: bool = True
    whole_run: Optional[str] = None
    # Span correlation and the span attributes it adds (docs/correlation.md).
    span_attributes: bool = True
    span_cpu_clock: str = "thread"
    native: bool = True
    max_endpoints: int = 100
    max_task_names: int = 100
    pyroscope_profile_id: bool = False

    def replace(self, **changes: object) -> ProfilerConfig:
        """Return a copy with ``changes`` applied and validated."""
        new = dataclasses.replace(self, **_check_types(changes))
        validate(new)
        return new


_RANGES: Dict[str, tuple[float, float]] = {
    "sampling_rate_hz": (1.0, 1000.0),
    "export_interval_seconds": (0.1, 3600.0),
    "max_stack_depth": (1, 4096),
    "queue_size": (1, 10000),
    "shutdown_timeout_seconds": (0.0, 600.0),
    "precise_window_seconds": (0.0, 3600.0),
    "precise_interval_seconds": (1.0, 86400.0),
    "memory_window_seconds": (0.0, 3600.0),
    "memory_interval_seconds": (1.0, 86400.0),
    "memory_traceback_depth": (1, 100),
    "memory_overhead_cap_mib": (1.0, 4096.0),
    "memory_snapshot_interval_seconds": (0.1, 3600.0),
    "leak_min_windows": (2, 100),
    "leak_min_bytes_per_second": (0.0, 1e12),
    "overhead_budget": (0.0, 1.0),
    "max_endpoints": (0, 10000),
    "max_task_names": (0, 10000),
}


_INT_SETTINGS = frozenset(
    {
        "max_stack_depth",
        "queue_size",
        "memory_traceback_depth",
        "leak_min_windows",
        "max_endpoints",
        "max_task_names",
    }
)
_TEXT_SETTINGS = frozenset(
    {"protocol", "endpoint", "compression", "service_name", "precise_clock", "whole_run"}
    | {"window_signal", "span_cpu_clock"}
)
_PATH_SETTINGS = frozenset(
    {"output_dir", "certificate_file", "client_key_file", "client_certificate_file"}
)
_FLAG_SETTINGS = frozenset(
    {
        "insecure",
        "gc_profiling",
        "span_attributes",
        "native",
        "pyroscope_profile_id",
        "adaptive_rate",
    }
)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_types(explicit: Mapping[str, Any]) -> Dict[str, Any]:
    """Raise ConfigError for an explicit argument of the wrong type, before anything reads it.

    Path-like values of file and directory settings become strings.
    """
    checked = dict(explicit)
    for name, given in explicit.items():
        value = given
        if name in _PATH_SETTINGS and isinstance(given, os.PathLike):
            value = checked[name] = os.fspath(given)
        if name in _TEXT_SETTINGS or name in _PATH_SETTINGS:
            expected, ok = "a string", isinstance(value, str)
        elif name in _FLAG_SETTINGS:
            expected, ok = "true or false", isinstance(value, bool)
        elif name in _RANGES or name == "timeout_seconds":
            expected, ok = "a number", _is_number(value)
            if ok and name in _INT_SETTINGS:
                expected, ok = "a whole number", isinstance(value, int)
        elif name == "resource_attributes":
            expected = "a mapping of strings to strings"
            ok = isinstance(value, Mapping) and all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            )
        elif name == "headers":
            expected = "a mapping or 'k1=v1,k2=v2'"
            ok = isinstance(value, str) or (
                isinstance(value, Mapping)
                and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
            )
        else:
            continue
        if not ok:
            raise ConfigError(f"{name} must be {expected}, got {value!r}")
    return checked


def validate(config: ProfilerConfig) -> None:
    """Raise :class:`ConfigError` naming the first setting that is out of range."""
    for name, (low, high) in _RANGES.items():
        value = getattr(config, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        if not low <= value <= high:
            raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {value!r}")
        if name in _INT_SETTINGS and not isinstance(value, int):
            raise ConfigError(f"{name} must be a whole number, got {value!r}")
    if not isinstance(config.adaptive_rate, bool):
        raise ConfigError(f"adaptive_rate must be true or false, got {config.adaptive_rate!r}")
    if not isinstance(config.gc_profiling, bool):
        raise ConfigError(f"gc_profiling must be true or false, got {config.gc_profiling!r}")
    for key, value in config.exporter.headers.items():
        problem = header_problem(key, value)
        if problem is not None:
            raise ConfigError(f"header {key!r} cannot be sent: {problem}")
    _validate_windows(config)
    _validate_correlation(config)
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
    if not exporter.endpoint.startswith(_SCHEMES):
        raise ConfigError(
            f"endpoint must start with http:// or https://, got {exporter.endpoint!r}"
        )
    problem = endpoint_problem(exporter.endpoint)
    if problem is not None:
        raise ConfigError(f"endpoint {exporter.endpoint!r}: {problem}")


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


# What both transports can send: gRPC metadata keys are [0-9a-z_.-] (a subset of HTTP's token
# characters) and text values printable ASCII; HTTP also refuses leading spaces and CR/LF.
# One unsendable header would otherwise fail every export, all profiles lost.
_HEADER_NAME = re.compile(r"[0-9a-z_.-]+")
_HEADER_VALUE = re.compile(r"(?:[\x21-\x7e][\x20-\x7e]*)?")


def header_problem(key: object, value: object) -> Optional[str]:
    """Why ``key: value`` cannot be sent as an OTLP header (gRPC and HTTP), or None."""
    if not isinstance(key, str) or not _HEADER_NAME.fullmatch(key):
        return "names are lowercase letters, digits, '-', '_' or '.'"
    if not isinstance(value, str) or not _HEADER_VALUE.fullmatch(value):
        return "values must be printable ASCII once URL-decoded"
    return None


def _header_pairs(raw: str) -> Iterator[Tuple[str, str, Optional[str]]]:
    """``(key, value, problem)`` per pair of ``k1=v1,k2=v2`` (URL-decoded, as the OTLP spec
    says); for a malformed pair, the key is what can be shown of it and the value is empty."""
    from urllib.parse import unquote

    for pair in raw.split(","):
        if not pair.strip():
            continue
        key, sep, value = pair.partition("=")
        key = unquote(key.strip()).lower()
        if not sep or not key:
            yield pair.split(":")[0].strip()[:40], "", "expected key=value"
            continue
        value = unquote(value.strip()).strip()
        yield key, value, header_problem(key, value)


def parse_headers(raw: str) -> Dict[str, str]:
    """Parse ``k1=v1,k2=v2``; skip malformed pairs with a warning.

    Warnings name the header but never show a value: it is often a credential.
    """
    headers: Dict[str, str] = {}
    for key, value, problem in _header_pairs(raw):
        if problem is not None:
            _logger.warning("otelprof: ignoring OTLP header %r: %s", key[:40], problem)
            continue
        headers[key] = value
    return headers


def headers_problem(raw: str) -> Optional[str]:
    """What is wrong with the first bad pair of a ``k1=v1,k2=v2`` header list, or None."""
    for key, _, problem in _header_pairs(raw):
        if problem is not None:
            return f"header {key[:40]!r}: {problem}"
    return None


def _is_base_url(endpoint: str) -> bool:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(endpoint if "://" in endpoint else "//" + endpoint)
    except ValueError:  # not a URL at all: validate() names the problem
        return False
    return bool(parts.netloc) and parts.path in ("", "/")


def endpoint_problem(endpoint: str) -> Optional[str]:
    """Why ``endpoint`` cannot be exported to (scheme, host, port), or None."""
    from urllib.parse import urlsplit

    if not endpoint.startswith(_SCHEMES):
        return "the scheme must be http or https"
    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018 (parsing the port is the check)
    except ValueError as error:
        return f"not a valid URL ({error})"
    if not parts.hostname:
        return "no host"
    return None


def _parse_timeout(name: str, raw: str, default_seconds: float) -> float:
    """The OTLP spec gives the timeout in milliseconds; the Python SDK reads it as seconds.

    A shared environment often holds the SDK's reading (``10``): taken as milliseconds that
    would be a 10 ms timeout and no export would ever succeed. So a value under 100 is read as
    seconds, with a warning saying so.
    """
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 600_000:
        _logger.warning(
            "otelprof: ignoring %s=%r (expected milliseconds between 1 and 600000); using %g ms",
            name,
            raw,
            default_seconds * 1000,
        )
        return default_seconds
    if value < 100:
        _logger.warning(
            "otelprof: %s=%s read as seconds (as the OpenTelemetry Python SDK does); the OTLP "
            "spec unit is milliseconds, so %s ms would be too short to export anything",
            name,
            raw,
            raw,
        )
        return value
    return value / 1000.0


def _resolve_exporter(environ: Mapping[str, str], explicit: Mapping[str, object]) -> ExporterConfig:
    default = ExporterConfig()
    protocol = explicit.get("protocol")
    if protocol is None:
        name, raw = _otlp_env(environ, "PROTOCOL")
        protocol = default.protocol
        if raw is not None:
            if raw in PROTOCOLS:
                protocol = raw
            elif raw.startswith("http/"):
                # e.g. http/json: the endpoint is an HTTP one, so HTTP with protobuf still works.
                _warn_bad(name, raw, f"supported: {', '.join(PROTOCOLS)}", "http/protobuf")
                protocol = "http/protobuf"
            else:
                _warn_bad(name, raw, f"supported: {', '.join(PROTOCOLS)}", default.protocol)

    endpoint = explicit.get("endpoint")
    if endpoint is None:
        specific = environ.get("OTEL_EXPORTER_OTLP_PROFILES_ENDPOINT", "").strip()
        generic = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        from_env = specific
        if not specific and generic:
            # The generic endpoint is a base URL: HTTP appends the signal's path.
            from_env = generic.rstrip("/") + HTTP_PROFILES_PATH if protocol != "grpc" else generic
        endpoint = (
            DEFAULT_GRPC_ENDPOINT
            if protocol == "grpc"
            else DEFAULT_HTTP_ENDPOINT + HTTP_PROFILES_PATH
        )
        # ``host:port`` without a scheme gets one below; either way it must be usable.
        candidate = from_env if "://" in from_env else "http://" + from_env
        problem = endpoint_problem(candidate) if from_env else None
        if problem is not None:
            name = f"OTEL_EXPORTER_OTLP_{'PROFILES_' if specific else ''}ENDPOINT"
            _warn_bad(name, specific or generic, problem, endpoint)
        elif from_env:
            endpoint = from_env
    elif protocol != "grpc" and isinstance(endpoint, str) and _is_base_url(endpoint):
        # An explicit base URL such as http://collector:4318 means the standard profiles path;
        # a URL with a path of its own (a gateway's) is used as given.
        endpoint = endpoint.rstrip("/") + HTTP_PROFILES_PATH

    if isinstance(endpoint, str) and "://" not in endpoint:
        # ``host:port`` without a scheme: TLS unless told insecure (the OpenTelemetry SDK's rule).
        insecure_hint = explicit.get("insecure")
        if insecure_hint is None:
            name, raw = _otlp_env(environ, "INSECURE")
            insecure_hint = env_bool({name: raw}, name, False) if raw is not None else False
        endpoint = ("http://" if insecure_hint else "https://") + endpoint

    headers = explicit.get("headers")
    if isinstance(headers, str):
        headers = parse_headers(headers)
    elif headers is not None and not isinstance(headers, Mapping):
        raise ConfigError(f"headers must be a mapping or 'k1=v1,k2=v2', got {headers!r}")
    if headers is None:
        _, raw = _otlp_env(environ, "HEADERS")
        headers = parse_headers(raw) if raw else {}

    timeout = explicit.get("timeout_seconds")
    if timeout is None:
        name, raw = _otlp_env(environ, "TIMEOUT")
        timeout = default.timeout_seconds
        if raw is not None:
            timeout = _parse_timeout(name, raw, default.timeout_seconds)

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
        # Header names are case-insensitive; gRPC metadata wants them in lowercase.
        headers={str(key).lower(): value for key, value in dict(headers).items()},
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


KEYWORD_VARIABLES: Dict[str, str] = {
    "sampling_rate_hz": "OTEL_PYTHON_PROFILER_SAMPLING_RATE",
    "adaptive_rate": "OTEL_PYTHON_PROFILER_ADAPTIVE_RATE",
    "export_interval_seconds": "OTEL_PYTHON_PROFILER_EXPORT_INTERVAL",
    "max_stack_depth": "OTEL_PYTHON_PROFILER_MAX_STACK_DEPTH",
    "output_dir": "OTEL_PYTHON_PROFILER_OUTPUT_DIR",
    "queue_size": "OTEL_PYTHON_PROFILER_QUEUE_SIZE",
    "shutdown_timeout_seconds": "OTEL_PYTHON_PROFILER_SHUTDOWN_TIMEOUT",
    "service_name": "OTEL_SERVICE_NAME",
    "resource_attributes": "OTEL_RESOURCE_ATTRIBUTES",
    "protocol": "OTEL_EXPORTER_OTLP_PROFILES_PROTOCOL",
    "endpoint": "OTEL_EXPORTER_OTLP_PROFILES_ENDPOINT",
    "headers": "OTEL_EXPORTER_OTLP_PROFILES_HEADERS",
    "timeout_seconds": "OTEL_EXPORTER_OTLP_PROFILES_TIMEOUT",
    "compression": "OTEL_EXPORTER_OTLP_PROFILES_COMPRESSION",
    "insecure": "OTEL_EXPORTER_OTLP_PROFILES_INSECURE",
    "certificate_file": "OTEL_EXPORTER_OTLP_PROFILES_CERTIFICATE",
    "client_key_file": "OTEL_EXPORTER_OTLP_PROFILES_CLIENT_KEY",
    "client_certificate_file": "OTEL_EXPORTER_OTLP_PROFILES_CLIENT_CERTIFICATE",
    "precise_window_seconds": "OTEL_PYTHON_PROFILER_PRECISE_WINDOW",
    "precise_interval_seconds": "OTEL_PYTHON_PROFILER_PRECISE_INTERVAL",
    "precise_clock": "OTEL_PYTHON_PROFILER_PRECISE_CLOCK",
    "memory_window_seconds": "OTEL_PYTHON_PROFILER_MEMORY_WINDOW",
    "memory_interval_seconds": "OTEL_PYTHON_PROFILER_MEMORY_INTERVAL",
    "memory_traceback_depth": "OTEL_PYTHON_PROFILER_MEMORY_TRACEBACK_DEPTH",
    "memory_overhead_cap_mib": "OTEL_PYTHON_PROFILER_MEMORY_OVERHEAD_CAP_MIB",
    "memory_snapshot_interval_seconds": "OTEL_PYTHON_PROFILER_MEMORY_SNAPSHOT_INTERVAL",
    "leak_min_windows": "OTEL_PYTHON_PROFILER_LEAK_MIN_WINDOWS",
    "leak_min_bytes_per_second": "OTEL_PYTHON_PROFILER_LEAK_MIN_RATE",
    "overhead_budget": "OTEL_PYTHON_PROFILER_OVERHEAD_BUDGET",
    "window_signal": "OTEL_PYTHON_PROFILER_WINDOW_SIGNAL",
    "gc_profiling": "OTEL_PYTHON_PROFILER_GC",
    "whole_run": "OTEL_PYTHON_PROFILER_WHOLE_RUN",
    "span_attributes": "OTEL_PYTHON_PROFILER_SPAN_ATTRIBUTES",
    "span_cpu_clock": "OTEL_PYTHON_PROFILER_SPAN_CPU_CLOCK",
    "native": "OTEL_PYTHON_PROFILER_NATIVE",
    "max_endpoints": "OTEL_PYTHON_PROFILER_MAX_ENDPOINTS",
    "max_task_names": "OTEL_PYTHON_PROFILER_MAX_TASK_NAMES",
    "pyroscope_profile_id": "OTEL_PYTHON_PROFILER_PYROSCOPE_PROFILE_ID",
}
"""Every keyword argument of ``otelprof.start()`` / ``Profiler(...)`` and the variable it
overrides (docs/configuration.md lists them; a test keeps this complete)."""


def resolve_config(environ: Optional[Mapping[str, str]] = None, **explicit: Any) -> ProfilerConfig:
    """Build the configuration: explicit arguments win, then the environment, then defaults.

    A bad environment value logs one warning and keeps the default; a bad explicit argument
    raises :class:`ConfigError` here, once, naming the argument.
    """
    env = os.environ if environ is None else environ
    explicit = {k: v for k, v in explicit.items() if v is not None}
    unknown = set(explicit) - _EXPORTER_KEYS - {f.name for f in dataclasses.fields(ProfilerConfig)}
    if unknown:
        import difflib

        hints = []
        for name in sorted(unknown):
            close = difflib.get_close_matches(name, KEYWORD_VARIABLES, n=1)
            hints.append(f"{name} (did you mean {close[0]}?)" if close else name)
        raise ConfigError(
            f"unknown configuration argument(s): {', '.join(hints)}; the arguments are listed in "
            "docs/configuration.md, 'Keyword arguments'"
        )
    explicit = _check_types(explicit)
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
        adaptive_rate=(
            explicit["adaptive_rate"]
            if "adaptive_rate" in explicit
            else env_bool(env, ev.OTEL_PYTHON_PROFILER_ADAPTIVE_RATE, default.adaptive_rate)
        ),
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
        **_resolve_windows(env, explicit, default),
        **_resolve_correlation(env, explicit, default),
    )
    validate(config)
    return config


# --- windows, GC and the overhead governor (docs/windows.md) ---------------------------------

PRECISE_CLOCKS = ("wall", "cpu")
WHOLE_RUN_MODES = ("precise", "memory")
_WINDOW_NUMBERS: Tuple[Tuple[str, str, Callable[[str], Any]], ...] = (
    ("precise_window_seconds", ev.OTEL_PYTHON_PROFILER_PRECISE_WINDOW, float),
    ("precise_interval_seconds", ev.OTEL_PYTHON_PROFILER_PRECISE_INTERVAL, float),
    ("memory_window_seconds", ev.OTEL_PYTHON_PROFILER_MEMORY_WINDOW, float),
    ("memory_interval_seconds", ev.OTEL_PYTHON_PROFILER_MEMORY_INTERVAL, float),
    ("memory_traceback_depth", ev.OTEL_PYTHON_PROFILER_MEMORY_TRACEBACK_DEPTH, int),
    ("memory_overhead_cap_mib", ev.OTEL_PYTHON_PROFILER_MEMORY_OVERHEAD_CAP_MIB, float),
    (
        "memory_snapshot_interval_seconds",
        ev.OTEL_PYTHON_PROFILER_MEMORY_SNAPSHOT_INTERVAL,
        float,
    ),
    ("leak_min_windows", ev.OTEL_PYTHON_PROFILER_LEAK_MIN_WINDOWS, int),
    ("leak_min_bytes_per_second", ev.OTEL_PYTHON_PROFILER_LEAK_MIN_RATE, float),
    ("overhead_budget", ev.OTEL_PYTHON_PROFILER_OVERHEAD_BUDGET, float),
)
_WINDOW_PAIRS = (
    ("precise_window_seconds", "precise_interval_seconds"),
    ("memory_window_seconds", "memory_interval_seconds"),
)


def parse_signal(name: str) -> int:
    """``SIGUSR2``, ``usr2`` or ``12`` -> the signal number; ValueError when it can't be used."""
    import signal

    text = name.strip().upper()
    if not text.isdigit() and not text.startswith("SIG"):
        text = "SIG" + text
    try:
        number = int(text) if text.isdigit() else int(signal.Signals[text])
    except KeyError:
        raise ValueError(f"unknown signal {name!r}") from None
    if number not in signal.valid_signals() or number in (
        getattr(signal, "SIGKILL", -1),
        getattr(signal, "SIGSTOP", -1),
    ):
        raise ValueError(f"signal {name!r} cannot be handled")
    return number


def _validate_windows(config: ProfilerConfig) -> None:
    if config.precise_clock not in PRECISE_CLOCKS:
        raise ConfigError(
            f"precise_clock must be one of {', '.join(PRECISE_CLOCKS)},"
            f" got {config.precise_clock!r}"
        )
    if config.whole_run is not None and config.whole_run not in WHOLE_RUN_MODES:
        raise ConfigError(
            f"whole_run must be one of {', '.join(WHOLE_RUN_MODES)}, got {config.whole_run!r}"
        )
    if config.window_signal is not None:
        try:
            parse_signal(config.window_signal)
        except ValueError as error:
            raise ConfigError(f"window_signal: {error}") from None
    for window, interval in _WINDOW_PAIRS:
        if getattr(config, window) > getattr(config, interval):
            raise ConfigError(f"{window} must not be longer than {interval}")


def _env_choice(
    environ: Mapping[str, str], name: str, choices: Tuple[str, ...], default: Optional[str]
) -> Optional[str]:
    raw = environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in choices:
        return raw
    _warn_bad(name, raw, f"supported: {', '.join(choices)}", default)
    return default


def _resolve_windows(
    environ: Mapping[str, str], explicit: Mapping[str, Any], default: ProfilerConfig
) -> Dict[str, Any]:
    """The window settings of :func:`resolve_config` (explicit -> environment -> default)."""
    out: Dict[str, Any] = {}
    for key, env_name, parse in _WINDOW_NUMBERS:
        if key in explicit:
            out[key] = explicit[key]
        else:
            out[key] = _env_number(environ, env_name, getattr(default, key), parse, key)
    for window, interval in _WINDOW_PAIRS:
        if window not in explicit and interval not in explicit and out[window] > out[interval]:
            _warn_bad(window, str(out[window]), f"longer than {interval}", out[interval])
            out[window] = out[interval]
    out["precise_clock"] = explicit.get("precise_clock") or _env_choice(
        environ, ev.OTEL_PYTHON_PROFILER_PRECISE_CLOCK, PRECISE_CLOCKS, default.precise_clock
    )
    out["whole_run"] = explicit.get("whole_run") or _env_choice(
        environ, ev.OTEL_PYTHON_PROFILER_WHOLE_RUN, WHOLE_RUN_MODES, None
    )
    signal_name = explicit.get("window_signal")
    if signal_name is None:
        raw = environ.get(ev.OTEL_PYTHON_PROFILER_WINDOW_SIGNAL, "").strip()
        if raw:
            try:
                parse_signal(raw)
                signal_name = raw
            except ValueError as error:
                _warn_bad(ev.OTEL_PYTHON_PROFILER_WINDOW_SIGNAL, raw, str(error), None)
    out["window_signal"] = signal_name
    out["gc_profiling"] = (
        explicit["gc_profiling"]
        if "gc_profiling" in explicit
        else env_bool(environ, ev.OTEL_PYTHON_PROFILER_GC, default.gc_profiling)
    )
    return out


# --- span correlation (docs/correlation.md) ---------------------------------------------------

_CORRELATION_FLAGS = (
    ("span_attributes", ev.OTEL_PYTHON_PROFILER_SPAN_ATTRIBUTES),
    ("native", ev.OTEL_PYTHON_PROFILER_NATIVE),
    ("pyroscope_profile_id", ev.OTEL_PYTHON_PROFILER_PYROSCOPE_PROFILE_ID),
)
_CORRELATION_CAPS = (
    ("max_endpoints", ev.OTEL_PYTHON_PROFILER_MAX_ENDPOINTS),
    ("max_task_names", ev.OTEL_PYTHON_PROFILER_MAX_TASK_NAMES),
)


SPAN_CPU_CLOCKS = ("thread", "task")
"""thread: CLOCK_THREAD_CPUTIME_ID (exact); task: a perf task-clock once a thread is long-lived."""


def _validate_correlation(config: ProfilerConfig) -> None:
    if config.span_cpu_clock not in SPAN_CPU_CLOCKS:
        raise ConfigError(
            f"span_cpu_clock must be one of {', '.join(SPAN_CPU_CLOCKS)},"
            f" got {config.span_cpu_clock!r}"
        )
    for name, _ in _CORRELATION_FLAGS:
        if not isinstance(getattr(config, name), bool):
            raise ConfigError(f"{name} must be true or false, got {getattr(config, name)!r}")
    for name, _ in _CORRELATION_CAPS:
        if not isinstance(getattr(config, name), int):
            raise ConfigError(f"{name} must be a whole number, got {getattr(config, name)!r}")


def _resolve_correlation(
    environ: Mapping[str, str], explicit: Mapping[str, Any], default: ProfilerConfig
) -> Dict[str, Any]:
    """The span correlation settings of :func:`resolve_config`."""
    out: Dict[str, Any] = {}
    for key, env_name in _CORRELATION_FLAGS:
        out[key] = (
            explicit[key] if key in explicit else env_bool(environ, env_name, getattr(default, key))
        )
    for key, env_name in _CORRELATION_CAPS:
        out[key] = (
            explicit[key]
            if key in explicit
            else _env_number(environ, env_name, getattr(default, key), int, key)
        )
    out["span_cpu_clock"] = explicit.get("span_cpu_clock") or _env_choice(
        environ, ev.OTEL_PYTHON_PROFILER_SPAN_CPU_CLOCK, SPAN_CPU_CLOCKS, default.span_cpu_clock
    )
    return out
