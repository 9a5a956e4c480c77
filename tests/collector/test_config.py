"""Configuration: defaults, every invalid config in testdata/ with its exact error, overrides."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Callable, Dict, Optional
from unittest import mock

import pytest
import yaml

from collector_processor.__main__ import main
from collector_processor.config import load_config, parse_config, unused_components
from collector_processor.confparse import ConfigError, parse_duration
from collector_processor.exporter.config import (
    FileExporterConfig,
    OTLPGrpcExporterConfig,
    OTLPHttpExporterConfig,
    SendingSettings,
    default_file_config,
    default_otlp_grpc_config,
    default_otlp_http_config,
)
from collector_processor.extension.config import FileStorageConfig, HealthCheckConfig
from collector_processor.overrides import apply_set
from collector_processor.processor.config import (
    MemoryLimiterConfig,
    ResourceDetectionConfig,
    default_resourcedetection_config,
)
from collector_processor.receiver.config import (
    GrpcServerConfig,
    HttpServerConfig,
    OTLPReceiverConfig,
    default_config,
)
from collector_processor.sending.config import (
    QueueSettings,
    RetrySettings,
    default_queue_settings,
    default_retry_settings,
)
from collector_processor.tlsconfig import ClientTLS

from .harness import InProcessService, base_config

TESTDATA = Path(__file__).parent / "testdata"
INVALID = sorted(TESTDATA.glob("*.yaml"))

MINIMAL = """
receivers:
  otlp:
    protocols:
      grpc:
exporters:
  otlp:
    endpoint: backend:4317
service:
  pipelines:
    profiles:
      receivers: [otlp]
      exporters: [otlp]
"""


def expected_error(path: Path) -> str:
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("# expect: "), f"{path.name} must start with '# expect: '"
    return first_line[len("# expect: ") :]


def test_there_are_invalid_configs_to_check() -> None:
    assert len(INVALID) >= 30


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_config_gives_the_exact_error(path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config([str(path)])
    assert str(caught.value) == expected_error(path)


def test_defaults_are_the_collectors() -> None:
    assert default_queue_settings() == QueueSettings(
        enabled=True, num_consumers=10, queue_size=1000, storage=None
    )
    assert default_retry_settings() == RetrySettings(
        enabled=True,
        initial_interval_seconds=5.0,
        max_interval_seconds=30.0,
        max_elapsed_time_seconds=300.0,
        multiplier=1.5,
        randomization_factor=0.5,
    )
    assert default_otlp_grpc_config() == OTLPGrpcExporterConfig(
        endpoint="", headers={}, compression="gzip", tls=ClientTLS(), sending=SendingSettings(5.0)
    )
    assert default_otlp_http_config() == OTLPHttpExporterConfig(
        compression="gzip", encoding="proto", sending=SendingSettings(30.0)
    )
    assert default_file_config() == FileExporterConfig(
        path="", format="json", rotation=False, max_megabytes=100, max_backups=100
    )
    assert default_config() == OTLPReceiverConfig(
        grpc=GrpcServerConfig(endpoint="localhost:4317", max_recv_msg_size_mib=4),
        http=HttpServerConfig(
            endpoint="localhost:4318",
            max_request_body_size=20 * 1024 * 1024,
            profiles_url_path="/v1development/profiles",
        ),
    )
    assert default_resourcedetection_config() == ResourceDetectionConfig(
        detectors=("env",), override=False, hostname_sources=("os",)
    )
    assert FileStorageConfig() == FileStorageConfig(
        directory="/var/lib/otelcol/file_storage", create_directory=False, fsync=True
    )
    assert HealthCheckConfig() == HealthCheckConfig(endpoint="localhost:13133", path="/")


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_minimal_config_uses_aliases_and_only_enabled_protocols(tmp_path: Path) -> None:
    config = load_config([write(tmp_path, "c.yaml", MINIMAL)])
    exporter = config.exporters["otlp"]
    assert exporter.type == "otlp_grpc"
    assert exporter.settings.endpoint == "backend:4317"
    receiver = config.receivers["otlp"].settings
    assert receiver.grpc == GrpcServerConfig()
    assert receiver.http is None


def test_files_merge_and_set_overrides_win(tmp_path: Path) -> None:
    base = write(tmp_path, "base.yaml", MINIMAL)
    extra = write(
        tmp_path,
        "extra.yaml",
        "exporters:\n  otlp:\n    timeout: 2s\n"
        "processors:\n  resource:\n    attributes: [{key: a, value: x, action: insert}]\n",
    )
    config = load_config(
        [base, extra],
        [
            "exporters::otlp::endpoint=other:4317",
            "exporters::otlp::sending_queue::queue_size=5",
            "processors::resource::attributes::0::value=42",
            "processors::resource::attributes::1={key: b, value: y, action: upsert}",
        ],
    )
    settings = config.exporters["otlp"].settings
    assert (settings.endpoint, settings.sending.timeout_seconds) == ("other:4317", 2.0)
    assert settings.sending.queue.queue_size == 5
    actions = config.processors["resource"].settings.attributes
    assert [(a.key, a.value, a.action) for a in actions] == [
        ("a", 42, "insert"),
        ("b", "y", "upsert"),
    ]


def test_set_rejects_a_malformed_assignment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected key::path=value"):
        load_config([write(tmp_path, "c.yaml", MINIMAL)], ["exporters::otlp::endpoint"])


def test_env_references_are_expanded_with_types_and_defaults(tmp_path: Path) -> None:
    raw: Dict[str, Any] = yaml.safe_load(MINIMAL)
    raw["exporters"]["otlp"] = {
        "endpoint": "${env:BACKEND}",
        "sending_queue": {"queue_size": "${env:QUEUE_SIZE}"},
        "headers": {"x-price": "$$5", "x-team": "${env:TEAM:-shop}", "x-id": "id-${env:BACKEND}"},
    }
    path = write(tmp_path, "c.yaml", yaml.safe_dump(raw))
    with mock.patch.dict("os.environ", {"BACKEND": "env-backend:4317", "QUEUE_SIZE": "7"}):
        settings = load_config([path]).exporters["otlp"].settings
    assert settings.endpoint == "env-backend:4317"
    assert settings.sending.queue.queue_size == 7
    assert settings.headers == {
        "x-price": "$5",
        "x-team": "shop",
        "x-id": "id-env-backend:4317",
    }


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5s", 5.0),
        ("100ms", 0.1),
        ("1m", 60.0),
        ("1h30m", 5400.0),
        ("1.5s", 1.5),
        ("0s", 0.0),
        (0, 0.0),
    ],
)
def test_durations(text: Any, seconds: float) -> None:
    assert parse_duration(text, "x") == pytest.approx(seconds)


def test_pipelines_named_profiles_slash_something_are_accepted() -> None:
    raw = yaml.safe_load(MINIMAL)
    raw["service"]["pipelines"]["profiles/second"] = {"receivers": ["otlp"], "exporters": ["otlp"]}
    config = parse_config(raw)
    assert [p.name for p in config.pipelines] == ["profiles", "profiles/second"]


def test_cli_validate_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, "good.yaml", MINIMAL)
    assert main(["--config", good, "--validate"]) == 0
    assert capsys.readouterr().out.strip() == "config OK"
    bad = str(TESTDATA / "queue_size_zero.yaml")
    assert main(["--config", bad, "--validate"]) == 2
    assert capsys.readouterr().err.strip() == (
        "otelprof-collector: invalid configuration: "
        "exporters::otlp_grpc/backend::sending_queue::queue_size: must be > 0"
    )
    assert main(["--config", str(tmp_path / "missing.yaml"), "--validate"]) == 2
    assert "cannot read config file" in capsys.readouterr().err


def test_default_configs_validate_where_the_collectors_do() -> None:
    default_config().validate("receivers::otlp")
    default_resourcedetection_config().validate("processors::resourcedetection")
    FileStorageConfig().validate("extensions::file_storage")
    HealthCheckConfig().validate("extensions::health_check")
    # Like the Collector's, these need a destination or a limit before they are valid.
    for config, path, message in (
        (default_otlp_grpc_config(), "exporters::otlp_grpc", "endpoint: required"),
        (default_otlp_http_config(), "exporters::otlp_http", "endpoint: required"),
        (default_file_config(), "exporters::file", "path: required"),
        (MemoryLimiterConfig(), "processors::memory_limiter", "check_interval: must be > 0"),
    ):
        with pytest.raises(ConfigError, match=message):
            config.validate(path)  # type: ignore[attr-defined]


def test_the_documented_example_is_a_valid_config() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "collector.md").read_text()
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = parse_config(yaml.safe_load(example))
    assert [p.name for p in config.pipelines] == ["profiles"]
    assert config.exporters["otlp_grpc/collector"].settings.sending.queue.storage == "file_storage"


@pytest.mark.parametrize("value", ["-1s", "0s", "0"])
def test_cli_refuses_a_shutdown_timeout_that_is_not_positive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    good = write(tmp_path, "good.yaml", MINIMAL)
    assert main(["--config", good, f"--shutdown-timeout={value}", "--validate"]) == 2
    assert capsys.readouterr().err.strip() == (
        "otelprof-collector: invalid configuration: --shutdown-timeout: must be > 0"
    )


@pytest.mark.parametrize(
    ("key", "endpoint", "expected"),
    [
        (
            "receivers::otlp::protocols::grpc::endpoint",
            "127.0.0.1:99999",
            '"127.0.0.1:99999": port 99999 out of range (1-65535, or 0 for a free port)',
        ),
        (
            "receivers::otlp::protocols::grpc::endpoint",
            "h:" + "9" * 5000,  # past int()'s digit limit: still this error, not a ValueError
            "out of range (1-65535, or 0 for a free port)",
        ),
        (
            "service::telemetry::metrics::address",
            ":70000",
            '":70000": port 70000 out of range (1-65535, or 0 for a free port)',
        ),
        (
            "exporters::otlp::endpoint",
            "backend:99999",
            '"backend:99999": port 99999 out of range (1-65535)',
        ),
        ("exporters::otlp::endpoint", "backend:0", '"backend:0": port 0 out of range (1-65535)'),
    ],
)
def test_a_port_out_of_range_is_named_as_such(
    tmp_path: Path, key: str, endpoint: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config([write(tmp_path, "c.yaml", MINIMAL)], [f"{key}={endpoint}"])
    assert str(caught.value).startswith(f"{key}: ")
    assert str(caught.value).endswith(expected)


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("multiplier", "0", "must be >= 1 (a smaller one shrinks the wait toward 0)"),
        ("multiplier", "0.5", "must be >= 1 (a smaller one shrinks the wait toward 0)"),
        ("initial_interval", "0s", "must be > 0 (0 retries in a tight loop)"),
        ("max_interval", "0s", "must be > 0 (0 retries in a tight loop)"),
    ],
)
def test_retry_settings_that_would_retry_in_a_tight_loop_are_refused(
    tmp_path: Path, key: str, value: str, reason: str
) -> None:
    path = write(tmp_path, "c.yaml", MINIMAL)
    with pytest.raises(ConfigError) as caught:
        load_config([path], [f"exporters::otlp::retry_on_failure::{key}={value}"])
    assert str(caught.value) == f"exporters::otlp::retry_on_failure::{key}: {reason}"


@pytest.mark.parametrize(
    ("text", "override", "expected"),
    [
        (
            "a: [\n b: c\n",
            None,
            "bad.yaml: invalid YAML at line 3, column 1: expected ',' or ']', but got "
            "'<stream end>' (while parsing a flow sequence started at line 1, column 4)",
        ),
        (
            "a: 1\nb: x\x01y\n",
            None,
            "bad.yaml: invalid YAML at line 2, column 5: unacceptable character #x0001: "
            "special characters are not allowed",
        ),
        (
            MINIMAL,
            "exporters::otlp::headers=[x",
            "exporters::otlp::headers: --set value is not valid YAML at line 1, column 3: "
            "expected ',' or ']', but got '<stream end>' (while parsing a flow sequence "
            "started at line 1, column 1)",
        ),
    ],
    ids=["file", "control_character", "set"],
)
def test_a_yaml_syntax_error_is_one_line_with_line_and_column(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    override: Optional[str],
    expected: str,
) -> None:
    path = write(tmp_path, "bad.yaml", text)
    args = ["--config", path, "--validate", *(["--set", override] if override else [])]
    assert main(args) == 2
    err = capsys.readouterr().err.replace(str(tmp_path) + "/", "")
    assert err.splitlines() == [f"otelprof-collector: invalid configuration: {expected}"]


@pytest.mark.parametrize(
    ("text", "override", "expected"),
    [
        (
            MINIMAL + "exporters:\n  file: {path: /tmp/x}\n",
            None,
            'c.yaml: invalid YAML at line 14, column 1: duplicate key "exporters" '
            "(first at line 6, column 1)",
        ),
        (
            MINIMAL.replace("endpoint: backend:4317", "{endpoint: a:1, endpoint: b:2}"),
            None,
            'c.yaml: invalid YAML at line 8, column 21: duplicate key "endpoint" '
            "(first at line 8, column 6)",
        ),
        (
            MINIMAL,
            "exporters::otlp::headers={a: x, a: y}",
            "exporters::otlp::headers: --set value is not valid YAML at line 1, column 8: "
            'duplicate key "a" (first at line 1, column 2)',
        ),
    ],
    ids=["section", "flow_mapping", "set"],
)
def test_a_duplicate_key_is_refused_with_its_line(
    tmp_path: Path, text: str, override: Optional[str], expected: str
) -> None:
    path = write(tmp_path, "c.yaml", text)
    with pytest.raises(ConfigError) as caught:
        load_config([path], [override] if override else [])
    assert str(caught.value).replace(f"{tmp_path}/", "") == expected


def test_a_misspelt_section_is_named_before_the_references_it_breaks(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", MINIMAL.replace("receivers:\n  otlp:", "receiver:\n  otlp:"))
    with pytest.raises(ConfigError) as caught:
        load_config([path])
    assert str(caught.value) == 'receiver: unknown key (did you mean "receivers"?)'


def test_substituted_and_set_scalars_keep_their_text_where_a_string_is_expected(
    tmp_path: Path,
) -> None:
    raw: Dict[str, Any] = yaml.safe_load(MINIMAL)
    raw["exporters"]["otlp"]["headers"] = {"x-tenant": "${env:TENANT}", "x-flag": "${env:FLAG}"}
    raw["exporters"]["otlp"]["sending_queue"] = {"enabled": "${env:FLAG}", "queue_size": "${env:N}"}
    raw["processors"] = {
        "resource": {"attributes": [{"key": "n", "value": "${env:N}", "action": "insert"}]}
    }
    raw["service"]["pipelines"]["profiles"]["processors"] = ["resource"]
    path = write(tmp_path, "c.yaml", yaml.safe_dump(raw))
    with mock.patch.dict("os.environ", {"TENANT": "0123", "FLAG": "true", "N": "42"}):
        config = load_config([path], ["exporters::otlp::headers::x-ver=1.10"])
    settings = config.exporters["otlp"].settings
    assert settings.headers == {
        "x-tenant": "0123",  # was "83" (YAML 1.1 octal)
        "x-flag": "true",  # was "expected a string, got bool"
        "x-ver": "1.10",  # was "1.1"
    }
    # Where the key takes another type, the YAML type still applies.
    assert settings.sending.queue.enabled is True
    assert settings.sending.queue.queue_size == 42
    assert config.processors["resource"].settings.attributes[0].value == 42

    # Scalars inside a --set mapping or list keep their text too.
    overrides = [
        "exporters::otlp::headers={x-on: yes, x-big: 1e3}",
        "service::pipelines::profiles::exporters=[otlp]",
    ]
    with mock.patch.dict("os.environ", {"FLAG": "true", "N": "42"}):
        config = load_config([path], overrides)
    assert config.exporters["otlp"].settings.headers == {"x-on": "yes", "x-big": "1e3"}


def test_validate_warns_about_components_no_pipeline_uses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = MINIMAL + "extensions:\n  health_check:\n"
    path = write(tmp_path, "c.yaml", text)
    # The id misses the exporter's name: a second exporter, in no pipeline.
    assert main(["--config", path, "--validate", "--set", "exporters::otlp/x::endpoint=b:1"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "config OK"
    assert captured.err.splitlines() == [
        "otelprof-collector: warning: not used by any pipeline, so not run: exporters::otlp/x",
        "otelprof-collector: warning: not listed in service::extensions, so not run: "
        "extensions::health_check",
    ]


def test_a_running_service_logs_the_components_no_pipeline_uses(
    tmp_path: Path,
    start_service: Callable[..., InProcessService],
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = base_config({"file": {"path": str(tmp_path / "out.jsonl")}})
    config["processors"] = {"resource": {"attributes": [{"key": "a", "action": "delete"}]}}
    with caplog.at_level(logging.WARNING, logger="collector_processor"):
        start_service(config)
    assert "not used by any pipeline, so not run: processors::resource" in caplog.messages


def test_the_documented_set_example_changes_the_documented_exporter() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "collector.md").read_text()
    example = yaml.safe_load(doc.split("```yaml\n", 1)[1].split("```", 1)[0])
    assignment = re.search(r"`--set (exporters::[^`]*)`", doc)
    assert assignment is not None
    config = parse_config(apply_set(example, assignment.group(1)))
    assert unused_components(config) == []
    assert config.exporters["otlp_grpc/collector"].settings.endpoint == "backend:4317"
