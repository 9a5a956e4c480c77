"""Bytes -> a configuration case for the agent, and the invariant every case must keep.

Shared by the coverage-guided fuzzer (``benchmarks/fuzz_agent_config.py``, atheris) and the
regression corpus test. The decoding is structure-aware: one byte picks the target (the
environment, explicit arguments, OTLP header text or ``otelprof run``'s argument list) and each
NUL-separated chunk picks a setting name or flag from the real lists, so mutations spend their
time on values rather than on guessing ``OTEL_EXPORTER_OTLP_PROFILES_TIMEOUT``.

The invariant (DESIGN.md, "Rules of the road"):

- the environment never raises: a bad value logs and falls back, and the result is valid
  (its exporter can be built);
- explicit arguments either give a valid configuration or raise ``ConfigError``, nothing else;
- header text never raises, and every header kept can be sent (gRPC metadata and HTTP);
- ``otelprof run ARGS`` ends in ``SystemExit(0 or 2)`` (help, usage error), 127 (no such
  command) or the exec of the program; never another exception.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import math
import re
import struct
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

from otelprof import environment_variables as ev
from otelprof.config import (
    _EXPORTER_KEYS,
    COMPRESSIONS,
    PRECISE_CLOCKS,
    PROTOCOLS,
    ConfigError,
    ProfilerConfig,
    parse_headers,
    resolve_config,
)

TARGETS = ("env", "explicit", "headers", "cli")

_OTLP_SUFFIXES = (
    "ENDPOINT",
    "HEADERS",
    "TIMEOUT",
    "PROTOCOL",
    "COMPRESSION",
    "CERTIFICATE",
    "CLIENT_KEY",
    "CLIENT_CERTIFICATE",
    "INSECURE",
)
ENV_KEYS = tuple(
    sorted(
        {value for name, value in vars(ev).items() if name.startswith("OTEL_PYTHON_PROFILER_")}
        | {f"OTEL_EXPORTER_OTLP_{suffix}" for suffix in _OTLP_SUFFIXES}
        | {f"OTEL_EXPORTER_OTLP_PROFILES_{suffix}" for suffix in _OTLP_SUFFIXES}
        | {"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"}
    )
)
EXPLICIT_KEYS = (
    *sorted({f.name for f in dataclasses.fields(ProfilerConfig)} - {"exporter"} | _EXPORTER_KEYS),
    "no_such_setting",
)
CLI_TOKENS = (
    "--",
    "-m",
    "-h",
    "--service-name",
    "--endpoint",
    "--protocol",
    "--headers",
    "--output",
    "--rate",
    "--export-interval",
    "--log-level",
    "--precise",
    "--memory",
    "python",
    "app.py",
    "grpc",
    "http/protobuf",
    "http://localhost:4317",
    "100",
    "debug",
)

INT_SETTINGS = (
    "max_stack_depth",
    "queue_size",
    "memory_traceback_depth",
    "leak_min_windows",
    "max_endpoints",
    "max_task_names",
)
BOOL_SETTINGS = ("gc_profiling", "span_attributes", "pyroscope_profile_id")
# What both transports can send: gRPC metadata keys are [0-9a-z_.-] (a subset of HTTP's
# token characters), and text values visible ASCII and spaces.
_HEADER_KEY = re.compile(r"^[0-9a-z_.-]+$")
_HEADER_VALUE = re.compile(r"^[\x20-\x7e]*$")


# --- decoding ---------------------------------------------------------------------------------


def _text(raw: bytes) -> str:
    # POSIX environments and argv hold bytes; Python decodes them this way.
    return raw.decode("utf-8", "surrogateescape")


def _value(raw: bytes) -> Any:
    """An explicit argument of any type a caller might pass, chosen by the first byte."""
    if not raw:
        return None
    kind, body = raw[0] % 8, raw[1:]
    if kind == 0:
        return _text(body)
    if kind == 1:
        return int.from_bytes(body[:8], "little", signed=True)
    if kind == 2:
        return struct.unpack("<d", body[:8].ljust(8, b"\0"))[0]  # nan, inf, subnormals too
    if kind == 3:
        return bool(body[:1] and body[0] & 1)
    if kind == 4:
        return None
    if kind == 5:
        pairs = [item.partition("=") for item in _text(body).split(",")]
        return {key: value for key, _, value in pairs}
    if kind == 6:  # numbers written as text: how the corpus spells them
        text = _text(body)
        for parse in (int, float):
            try:
                return parse(text)
            except ValueError:
                continue
        return text
    return _text(body).split(",")


def decode(data: bytes) -> Dict[str, Any]:
    """The case ``data`` stands for (a JSON-able dict: the corpus stores it as is)."""
    if not data:
        return {"target": "env", "environ": {}}
    target = TARGETS[data[0] % len(TARGETS)]
    chunks = [c for c in data[1:].split(b"\0") if c]
    if target == "headers":
        return {"target": target, "raw": _text(data[1:])}
    if target == "env":
        environ = {ENV_KEYS[c[0] % len(ENV_KEYS)]: _text(c[1:]) for c in chunks}
        return {"target": target, "environ": environ}
    if target == "explicit":
        kwargs = {EXPLICIT_KEYS[c[0] % len(EXPLICIT_KEYS)]: _value(c[1:]) for c in chunks}
        return {"target": target, "kwargs": kwargs}
    argv = [CLI_TOKENS[c[0] % len(CLI_TOKENS)] if c[0] < 0x80 else _text(c[1:]) for c in chunks]
    return {"target": target, "argv": argv}


def encode(case: Mapping[str, Any]) -> bytes:
    """Bytes that :func:`decode` turns back into ``case`` (to seed the fuzzer with the corpus).

    Raises ValueError for a case no input spells (a NUL inside a value, say).
    """
    target = case["target"]
    head = bytes([TARGETS.index(target)])
    if target == "headers":
        return head + _bytes(case["raw"])
    if target == "env":
        chunks = [_pick(ENV_KEYS, k) + _bytes(v) for k, v in case["environ"].items()]
    elif target == "explicit":
        chunks = [_pick(EXPLICIT_KEYS, k) + _encode_value(v) for k, v in case["kwargs"].items()]
    else:
        chunks = [
            _pick(CLI_TOKENS, t) if t in CLI_TOKENS else b"\x80" + _bytes(t) for t in case["argv"]
        ]
    if any(b"\0" in chunk for chunk in chunks):
        raise ValueError(f"no input spells {case!r}")
    return head + b"".join(b"\0" + chunk for chunk in chunks)


def _pick(choices: Tuple[str, ...], item: str) -> bytes:
    """The byte that selects ``item`` (index 0 spelled as len: a NUL would split the chunk)."""
    return bytes([choices.index(item) or len(choices)])


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _encode_value(value: Any) -> bytes:
    if value is None:
        return b"\x04"
    if isinstance(value, bool):
        return b"\x03" + (b"\x01" if value else b"\x02")
    if isinstance(value, (int, float)):
        return b"\x06" + repr(value).encode()
    if isinstance(value, str):
        return b"\x08" + _bytes(value)  # kind 0, spelled 8: a NUL would split the chunk
    if isinstance(value, dict):
        return b"\x05" + _bytes(",".join(f"{k}={v}" for k, v in value.items()))
    return b"\x07" + _bytes(",".join(value))


# --- the invariant ----------------------------------------------------------------------------


class InvariantViolation(AssertionError):
    """A case broke the invariant; the message holds the case as JSON."""


def check(case: Mapping[str, Any]) -> None:
    """Run ``case``; raise :class:`InvariantViolation` (or let a crash out) if it misbehaves."""
    with _formatting_log_handler():
        target = case["target"]
        if target == "env":
            _check_config(resolve_config(dict(case["environ"])), case)
        elif target == "explicit":
            try:
                config = resolve_config({}, **case["kwargs"])
            except ConfigError as error:
                if not str(error):
                    _fail("ConfigError without a message", "", case)
                return
            _check_config(config, case)
        elif target == "headers":
            _check_headers(parse_headers(case["raw"]), case)
        elif target == "cli":
            _check_cli(list(case["argv"]), case)
        else:
            raise ValueError(f"unknown target {target!r}")


def _fail(kind: str, detail: str, case: Mapping[str, Any]) -> None:
    """``kind`` names the class of problem (the fuzzer's signature); ``detail`` this instance."""
    raise InvariantViolation(f"{kind}: {detail}; case: {to_json(case)}")


def _check_headers(headers: Mapping[str, str], case: Mapping[str, Any]) -> None:
    for key, value in headers.items():
        if not isinstance(key, str) or not _HEADER_KEY.match(key):
            _fail("header name cannot be sent", repr(key), case)
        if not isinstance(value, str) or not _HEADER_VALUE.match(value):
            _fail("header value cannot be sent", f"{key!r}: {value!r}", case)


def _check_config(config: ProfilerConfig, case: Mapping[str, Any]) -> None:
    """A configuration that resolved is usable: right types, finite numbers, known choices,
    and its exporter can be built (which does no I/O: channels and files come later)."""
    from otelprof.export import create_exporter

    create_exporter(config).shutdown()
    for field in dataclasses.fields(ProfilerConfig):
        value = getattr(config, field.name)
        if field.name in INT_SETTINGS and (type(value) is not int):
            _fail(f"{field.name} resolved to a non-integer", repr(value), case)
        if field.name in BOOL_SETTINGS and type(value) is not bool:
            _fail(f"{field.name} resolved to a non-boolean", repr(value), case)
        if isinstance(value, float) and not math.isfinite(value):
            _fail(f"{field.name} resolved to a non-finite number", repr(value), case)
    if config.precise_clock not in PRECISE_CLOCKS:
        _fail("precise_clock resolved to an unknown clock", repr(config.precise_clock), case)
    for name in ("service_name", "output_dir", "window_signal", "whole_run"):
        value = getattr(config, name)
        if value is not None and not isinstance(value, str):
            _fail(f"{name} resolved to a non-string", repr(value), case)
    attributes = config.resource_attributes
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()):
        _fail("resource_attributes resolved to non-strings", repr(attributes), case)
    exporter = config.exporter
    if exporter.protocol not in PROTOCOLS or exporter.compression not in COMPRESSIONS:
        _fail("exporter protocol or compression unknown", repr(exporter), case)
    if not exporter.endpoint.startswith(("http://", "https://")):
        _fail("endpoint resolved to a non-HTTP URL", repr(exporter.endpoint), case)
    if not (isinstance(exporter.timeout_seconds, float) and 0 < exporter.timeout_seconds <= 600):
        _fail("timeout resolved out of range", repr(exporter.timeout_seconds), case)
    _check_headers(exporter.headers, case)
    for name in ("certificate_file", "client_key_file", "client_certificate_file"):
        value = getattr(exporter, name)
        if value is not None and not isinstance(value, str):
            _fail(f"{name} resolved to a non-string", repr(value), case)


class _Exec(Exception):
    """Raised instead of exec'ing the program: the CLI got as far as it should."""


class _OsForTheCli:
    """``os`` as ``otelprof.cli`` sees it while fuzzing: no exec, no directories, given env."""

    def __init__(self, environ: Dict[str, str]) -> None:
        import os

        self._os = os
        self.environ = environ

    def __getattr__(self, name: str) -> Any:
        return getattr(self._os, name)

    def makedirs(self, *args: Any, **kwargs: Any) -> None:
        return None

    def execve(self, *args: Any) -> None:
        raise _Exec


def _check_cli(argv: List[str], case: Mapping[str, Any]) -> None:
    from otelprof import cli

    # The CLI's module global ``os``, swapped for the duration of one run.
    namespace = vars(cli)
    real_os = namespace["os"]
    namespace["os"] = _OsForTheCli({"PATH": "/usr/bin:/bin"})
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            status = cli.run(argv)
    except _Exec:
        return
    except SystemExit as exit_:
        if exit_.code not in (0, 2):
            _fail("otelprof run exited with an unexpected code", repr(exit_.code), case)
        return
    finally:
        namespace["os"] = real_os
    if status != 127:
        _fail("otelprof run returned an unexpected status", repr(status), case)


class _FormattingHandler(logging.Handler):
    """Formats every agent log record, so a message that cannot be formatted is a crash."""

    def emit(self, record: logging.LogRecord) -> None:
        record.getMessage()


@contextlib.contextmanager
def _formatting_log_handler() -> Iterator[None]:
    logger = logging.getLogger("otelprof")
    handler = _FormattingHandler()
    saved = logger.propagate, logger.level
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate, level = saved
        logger.setLevel(level)


# --- the corpus -------------------------------------------------------------------------------


def to_json(case: Mapping[str, Any]) -> str:
    # Lone surrogates (from surrogateescape) and NaN survive json's own escaping.
    return json.dumps(case, ensure_ascii=True, sort_keys=True)


def from_json(text: str) -> Dict[str, Any]:
    loaded: Dict[str, Any] = json.loads(text)
    return loaded


def problem_of(case: Mapping[str, Any]) -> Optional[Tuple[str, str]]:
    """None when ``case`` keeps the invariant, else (signature, one-line description).

    The signature names the class of problem (an exception type and the agent line it came
    from, or the kind of violation) so that a fuzzing run can count distinct bugs.
    """
    try:
        check(case)
    except InvariantViolation as violation:
        text = str(violation).split("; case: ")[0]
        return f"{case['target']}: {text.split(': ')[0]}", text
    except Exception as error:  # a crash: the exception type and where it came from
        import traceback

        frames = [f for f in traceback.extract_tb(error.__traceback__) if "otelprof" in f.filename]
        where = ""
        if frames:
            path = frames[-1].filename.rsplit("otelprof", 1)[-1]
            where = f" at otelprof{path}:{frames[-1].lineno}"
        signature = f"{case['target']}: {type(error).__name__}{where}"
        return signature, f"{type(error).__name__}{where}: {error}"
    return None
