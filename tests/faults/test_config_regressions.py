"""What the configuration fuzzing found, pinned: each bug's intended behaviour, end to end too."""

from __future__ import annotations

import logging
import pathlib

import pytest

from otelprof.config import ConfigError, ProfilerConfig, parse_headers, resolve_config
from otelprof.export.otlp_grpc import OTLPGrpcProfileExporter
from tests.agent.e2e import APPS, OTELPROF, child_env, run
from tests.export.servers import RecordingGrpcServer, make_request


def test_an_endpoint_with_another_scheme_in_the_environment_falls_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="otelprof"):
        config = resolve_config({"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://collector:4317"})
    assert config.exporter.endpoint == "http://localhost:4317"
    assert "OTEL_EXPORTER_OTLP_ENDPOINT='ftp://collector:4317'" in caplog.text
    assert "scheme must be http or https" in caplog.text


def test_an_explicit_endpoint_with_another_scheme_is_still_an_error() -> None:
    with pytest.raises(ConfigError, match="endpoint must start with http"):
        resolve_config({}, endpoint="ftp://collector:4317")


def test_unsendable_headers_are_skipped_and_the_others_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    raw = "api-key=s3cret,bad key=1,x-nl=a%0Ab,tenant=caf%C3%A9,Authorization=Bearer%20t0ken"
    with caplog.at_level(logging.WARNING, logger="otelprof"):
        headers = parse_headers(raw)
    assert headers == {"api-key": "s3cret", "authorization": "Bearer t0ken"}
    assert caplog.text.count("ignoring OTLP header") == 3
    # Warnings name the header, never its value (often a credential).
    assert "'bad key'" in caplog.text and "'x-nl'" in caplog.text
    assert "caf" not in caplog.text


def test_a_malformed_header_warning_does_not_echo_the_credential(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="otelprof"):
        assert parse_headers("authorization: Bearer s3cret") == {}
    assert "'authorization'" in caplog.text
    assert "s3cret" not in caplog.text


@pytest.mark.parametrize(
    ("argument", "value", "message"),
    [
        ("timeout_seconds", "ten", "timeout_seconds must be a number"),
        ("timeout_seconds", {"a": ""}, "timeout_seconds must be a number"),
        ("resource_attributes", "a=b", "resource_attributes must be a mapping"),
        ("resource_attributes", {"a": 1}, "resource_attributes must be a mapping"),
        ("window_signal", True, "window_signal must be a string"),
        ("service_name", ["x"], "service_name must be a string"),
        ("gc_profiling", "yes", "gc_profiling must be true or false"),
        ("insecure", "no", "insecure must be true or false"),
        ("queue_size", 4.0, "queue_size must be a whole number"),
        ("max_stack_depth", 1.5, "max_stack_depth must be a whole number"),
        ("headers", {"bad key": "1"}, "header 'bad key' cannot be sent"),
        ("headers", {"k": 1}, "headers must be a mapping"),
        ("endpoint", 4317, "endpoint must be a string"),
        ("output_dir", True, "output_dir must be a string"),
        ("certificate_file", 5, "certificate_file must be a string"),
    ],
)
def test_explicit_arguments_of_the_wrong_type_raise_config_error(
    argument: str, value: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_config({}, **{argument: value})


def test_replace_checks_types_too() -> None:
    with pytest.raises(ConfigError, match="max_stack_depth must be a whole number"):
        ProfilerConfig().replace(max_stack_depth=1.5)


def test_paths_are_accepted_where_files_are_named(tmp_path: pathlib.Path) -> None:
    config = resolve_config({}, output_dir=tmp_path, certificate_file=tmp_path / "ca.pem")
    assert config.output_dir == str(tmp_path)
    assert config.exporter.certificate_file == str(tmp_path / "ca.pem")


def test_explicit_header_names_are_lowercased() -> None:
    config = resolve_config({}, headers={"Authorization": "Bearer x"})
    assert dict(config.exporter.headers) == {"authorization": "Bearer x"}


def test_a_binary_grpc_header_is_sent_as_bytes() -> None:
    # A text value on a ``-bin`` key made grpc raise TypeError: every export failed.
    with RecordingGrpcServer() as server:
        config = resolve_config({"OTEL_EXPORTER_OTLP_HEADERS": "x-token-bin=abc"})
        exporter = OTLPGrpcProfileExporter(
            resolve_config(
                {}, endpoint=server.endpoint, headers=dict(config.exporter.headers)
            ).exporter
        )
        try:
            result = exporter.export(make_request(), 10)
        finally:
            exporter.shutdown()
        assert result.status.name == "SUCCESS", result.message
        sent: object = server.headers[0]["x-token-bin"]
        assert sent == b"abc"


def test_one_bad_header_no_longer_loses_every_profile_end_to_end() -> None:
    with RecordingGrpcServer() as server:
        result = run(
            [*OTELPROF, "run", "--endpoint", server.endpoint, "--", str(APPS / "busy_app.py")],
            env=child_env(OTEL_EXPORTER_OTLP_HEADERS="api-key=s3cret,bad key=1"),
        )
        assert result.returncode == 0, result.stderr
        assert server.wait_for_requests(1), result.stderr
        assert server.headers[0]["api-key"] == "s3cret"
    assert "ignoring OTLP header 'bad key'" in result.stderr
    assert "Invalid metadata" not in result.stderr


@pytest.mark.parametrize(
    ("endpoint", "problem"),
    [
        ("http://[::1", "not a valid URL"),
        ("http://collector:99999", "not a valid URL"),
        ("http://", "no host"),
        ("[::1", "not a valid URL"),
    ],
)
def test_an_unusable_endpoint_url_is_a_config_error_or_a_fallback(
    endpoint: str, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ConfigError, match=problem):
        resolve_config({}, endpoint=endpoint, protocol="http/protobuf")
    with caplog.at_level(logging.WARNING, logger="otelprof"):
        config = resolve_config({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})
    assert config.exporter.endpoint == "http://localhost:4317"
    assert problem in caplog.text
