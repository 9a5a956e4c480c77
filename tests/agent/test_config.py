"""Configuration: explicit -> profiles env -> generic env -> default; bad values handled."""

from __future__ import annotations

import logging

import pytest

from otelprof import environment_variables as ev
from otelprof.config import ConfigError, ExporterConfig, ProfilerConfig, resolve_config


def test_defaults_are_pinned():
    config = resolve_config({})
    assert config == ProfilerConfig()
    assert config.sampling_rate_hz == 100.0
    assert config.export_interval_seconds == 10.0
    assert config.max_stack_depth == 128
    assert config.queue_size == 16
    assert config.exporter == ExporterConfig(protocol="grpc", endpoint="http://localhost:4317")
    assert not config.exporter.use_tls


def test_profiles_specific_env_wins_over_generic_and_explicit_wins_over_both():
    env = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_PROFILES_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
        "OTEL_EXPORTER_OTLP_HEADERS": "a=1,b=2",
        "OTEL_EXPORTER_OTLP_PROFILES_HEADERS": "api-key=s%3Dcret",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
        "OTEL_EXPORTER_OTLP_PROFILES_COMPRESSION": "gzip",
        "OTEL_EXPORTER_OTLP_CERTIFICATE": "/etc/ca.pem",
    }
    config = resolve_config(env)
    exporter = config.exporter
    assert exporter.protocol == "http/protobuf"
    # The generic endpoint is a base URL: the signal path is appended for HTTP.
    assert exporter.endpoint == "http://collector:4318/v1development/profiles"
    assert exporter.headers == {"api-key": "s=cret"}
    assert exporter.timeout_seconds == 2.5
    assert exporter.compression == "gzip"
    assert exporter.certificate_file == "/etc/ca.pem"
    explicit = resolve_config(
        env, protocol="grpc", endpoint="https://other:4317", timeout_seconds=1
    )
    assert explicit.exporter.protocol == "grpc"
    assert explicit.exporter.endpoint == "https://other:4317"
    assert explicit.exporter.use_tls


def test_unsupported_http_protocol_falls_back_to_http_protobuf(caplog):
    env = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
    }
    with caplog.at_level(logging.WARNING, logger="otelprof"):
        exporter = resolve_config(env).exporter
    assert exporter.protocol == "http/protobuf"
    assert exporter.endpoint == "http://c:4318/v1development/profiles"
    assert "http/json" in caplog.text


def test_explicit_http_endpoint_keeps_its_own_path():
    config = resolve_config({}, protocol="http/protobuf", endpoint="https://gw.example/ingest/x")
    assert config.exporter.endpoint == "https://gw.example/ingest/x"
    base = resolve_config({}, protocol="http/protobuf", endpoint="http://c:4318/")
    assert base.exporter.endpoint == "http://c:4318/v1development/profiles"


def test_scheme_decides_tls():
    env = {"OTEL_EXPORTER_OTLP_INSECURE": "false"}
    assert not resolve_config(env, endpoint="http://c:4317").exporter.use_tls
    assert resolve_config(
        {"OTEL_EXPORTER_OTLP_INSECURE": "true"}, endpoint="https://c:4317"
    ).exporter.use_tls


@pytest.mark.parametrize(("raw", "seconds"), [("2500", 2.5), ("10", 10.0), ("100", 0.1)])
def test_timeout_is_milliseconds_but_small_values_are_the_sdks_seconds(raw, seconds):
    assert resolve_config({"OTEL_EXPORTER_OTLP_TIMEOUT": raw}).exporter.timeout_seconds == seconds


def test_headers_given_as_text_are_parsed():
    assert resolve_config({}, headers="a=1,b=2").exporter.headers == {"a": "1", "b": "2"}
    with pytest.raises(ConfigError, match="headers must be"):
        resolve_config({}, headers=5)


def test_profiles_endpoint_is_used_as_is():
    env = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_PROFILES_ENDPOINT": "http://gw:9999/custom/path",
    }
    assert resolve_config(env).exporter.endpoint == "http://gw:9999/custom/path"


def test_endpoint_without_scheme_follows_the_sdk_rule():
    assert (
        resolve_config({}, endpoint="collector:4317").exporter.endpoint == "https://collector:4317"
    )
    insecure = resolve_config({"OTEL_EXPORTER_OTLP_INSECURE": "true"}, endpoint="collector:4317")
    assert insecure.exporter.endpoint == "http://collector:4317"


def test_our_env_vars_are_read():
    env = {
        ev.OTEL_PYTHON_PROFILER_SAMPLING_RATE: "250",
        ev.OTEL_PYTHON_PROFILER_EXPORT_INTERVAL: "2.5",
        ev.OTEL_PYTHON_PROFILER_MAX_STACK_DEPTH: "64",
        ev.OTEL_PYTHON_PROFILER_OUTPUT_DIR: "/tmp/x",
        ev.OTEL_PYTHON_PROFILER_QUEUE_SIZE: "3",
        ev.OTEL_PYTHON_PROFILER_SHUTDOWN_TIMEOUT: "1",
    }
    config = resolve_config(env)
    assert (config.sampling_rate_hz, config.export_interval_seconds, config.max_stack_depth) == (
        250.0,
        2.5,
        64,
    )
    assert (config.output_dir, config.queue_size, config.shutdown_timeout_seconds) == (
        "/tmp/x",
        3,
        1.0,
    )


@pytest.mark.parametrize(
    ("name", "raw", "reason"),
    [
        (ev.OTEL_PYTHON_PROFILER_SAMPLING_RATE, "fast", "not a number"),
        (ev.OTEL_PYTHON_PROFILER_SAMPLING_RATE, "0", "must be between 1 and 1000"),
        (ev.OTEL_PYTHON_PROFILER_MAX_STACK_DEPTH, "1.5", "not a number"),
        ("OTEL_EXPORTER_OTLP_PROFILES_PROTOCOL", "udp", "supported: grpc, http/protobuf"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd", "supported: gzip, none"),
        (
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "-5",
            "(expected milliseconds between 1 and 600000); using 10000 ms",
        ),
    ],
)
def test_bad_env_value_logs_one_line_and_keeps_the_default(caplog, name, raw, reason):
    with caplog.at_level(logging.WARNING, logger="otelprof"):
        config = resolve_config({name: raw})
    assert config == ProfilerConfig()
    (record,) = caplog.records
    assert name in record.getMessage() and reason in record.getMessage()


@pytest.mark.parametrize(
    ("argument", "value", "message"),
    [
        ("sampling_rate_hz", 0, "sampling_rate_hz must be between 1 and 1000"),
        ("export_interval_seconds", 0.0, "export_interval_seconds must be between 0.1 and 3600"),
        ("max_stack_depth", "deep", "max_stack_depth must be a number"),
        ("protocol", "udp", "protocol must be one of grpc, http/protobuf"),
        ("compression", "lz4", "compression must be one of none, gzip"),
        ("endpoint", "ftp://x", "endpoint must start with http:// or https://"),
        ("sampling_rat_hz", 5, "unknown configuration argument(s): sampling_rat_hz"),
    ],
)
def test_bad_explicit_argument_raises_naming_it(argument, value, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve_config({}, **{argument: value})


def test_profiler_raises_once_at_construction_for_bad_arguments():
    import otelprof

    with pytest.raises(ConfigError):
        otelprof.Profiler(sampling_rate_hz=-1)


def test_every_keyword_argument_is_listed_with_its_variable():
    import dataclasses

    from otelprof._docgen import documented_constants
    from otelprof.config import _EXPORTER_KEYS, KEYWORD_VARIABLES, ProfilerConfig

    fields = {f.name for f in dataclasses.fields(ProfilerConfig)} - {"exporter"}
    assert set(KEYWORD_VARIABLES) == fields | _EXPORTER_KEYS
    ours = {name for name, _ in documented_constants()}
    for variable in KEYWORD_VARIABLES.values():
        assert variable in ours or variable.startswith(
            ("OTEL_EXPORTER_OTLP_", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES")
        ), variable


def test_an_unknown_keyword_argument_gets_the_closest_name():
    with pytest.raises(ConfigError) as error:
        resolve_config({}, sampling_rate=50)
    assert "unknown configuration argument(s): sampling_rate (did you mean sampling_rate_hz?)" in (
        str(error.value)
    )


# For each keyword: a valid value as its variable's text, and as the keyword's argument. The
# values differ from the defaults, so a keyword and a variable that do not meet are caught.
_KEYWORD_SAMPLES = {
    "sampling_rate_hz": ("50", 50.0),
    "adaptive_rate": ("false", False),
    "export_interval_seconds": ("3", 3.0),
    "max_stack_depth": ("40", 40),
    "output_dir": ("/tmp/otelprof-config-test", "/tmp/otelprof-config-test"),
    "queue_size": ("7", 7),
    "shutdown_timeout_seconds": ("2", 2.0),
    "service_name": ("checkout", "checkout"),
    "resource_attributes": ("team=core", {"team": "core"}),
    "protocol": ("http/protobuf", "http/protobuf"),
    "endpoint": ("http://collector:4317", "http://collector:4317"),
    "headers": ("api-key=secret", {"api-key": "secret"}),
    "timeout_seconds": ("3", 3.0),
    "compression": ("gzip", "gzip"),
    "insecure": ("true", True),
    "certificate_file": ("/etc/ca.pem", "/etc/ca.pem"),
    "client_key_file": ("/etc/key.pem", "/etc/key.pem"),
    "client_certificate_file": ("/etc/cert.pem", "/etc/cert.pem"),
    "precise_window_seconds": ("2", 2.0),
    "precise_interval_seconds": ("60", 60.0),
    "precise_clock": ("cpu", "cpu"),
    "memory_window_seconds": ("2", 2.0),
    "memory_interval_seconds": ("60", 60.0),
    "memory_traceback_depth": ("4", 4),
    "memory_overhead_cap_mib": ("8", 8.0),
    "memory_snapshot_interval_seconds": ("5", 5.0),
    "leak_min_windows": ("4", 4),
    "leak_min_bytes_per_second": ("2048", 2048.0),
    "overhead_budget": ("0.02", 0.02),
    "window_signal": ("SIGUSR2", "SIGUSR2"),
    "gc_profiling": ("false", False),
    "whole_run": ("memory", "memory"),
    "span_attributes": ("false", False),
    "span_cpu_clock": ("task", "task"),
    "native": ("false", False),
    "max_endpoints": ("10", 10),
    "max_task_names": ("10", 10),
    "pyroscope_profile_id": ("true", True),
}


# The OpenTelemetry SDK reads these two variables when the resource is made, not the config.
_RESOURCE_KEYWORDS = {"service_name", "resource_attributes"}


@pytest.mark.parametrize("keyword", sorted(set(_KEYWORD_SAMPLES) - _RESOURCE_KEYWORDS))
def test_each_keyword_sets_what_its_listed_variable_sets(keyword: str) -> None:
    # KEYWORD_VARIABLES (the documented table) is kept beside the reading of each variable in
    # resolve_config: this holds the two together.
    from otelprof.config import KEYWORD_VARIABLES

    text, value = _KEYWORD_SAMPLES[keyword]
    from_variable = resolve_config({KEYWORD_VARIABLES[keyword]: text})
    from_keyword = resolve_config({}, **{keyword: value})
    assert from_variable == from_keyword
    assert from_keyword != resolve_config({})


def test_every_keyword_has_a_sample_value() -> None:
    from otelprof.config import KEYWORD_VARIABLES

    assert set(_KEYWORD_SAMPLES) == set(KEYWORD_VARIABLES)


@pytest.mark.parametrize("keyword", sorted(_RESOURCE_KEYWORDS))
def test_the_resource_keywords_set_what_their_variables_set(keyword: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from otelprof.config import KEYWORD_VARIABLES
    from otelprof.resource import detect_resource

    def facts(resource) -> dict:  # type: ignore[no-untyped-def]
        attributes = dict(resource.attributes)
        attributes.pop("service.instance.id")  # new each time
        return attributes

    text, value = _KEYWORD_SAMPLES[keyword]
    for variable in _RESOURCE_KEYWORDS:
        monkeypatch.delenv(KEYWORD_VARIABLES[variable], raising=False)
    config = resolve_config({}, **{keyword: value})
    from_keyword = facts(detect_resource(config.service_name, config.resource_attributes))
    assert from_keyword != facts(detect_resource())
    monkeypatch.setenv(KEYWORD_VARIABLES[keyword], text)
    assert facts(detect_resource()) == from_keyword
