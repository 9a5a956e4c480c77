"""The correlation settings: environment, explicit arguments, validation, and the wiring."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from otelprof import Profiler
from otelprof.config import ConfigError, resolve_config
from otelprof.export.memory import InMemoryProfileExporter


def test_defaults() -> None:
    config = resolve_config({})
    assert config.span_attributes is True
    assert config.native is True
    assert config.max_endpoints == 100
    assert config.max_task_names == 100
    assert config.pyroscope_profile_id is False


def test_from_the_environment() -> None:
    config = resolve_config(
        {
            "OTEL_PYTHON_PROFILER_SPAN_ATTRIBUTES": "false",
            "OTEL_PYTHON_PROFILER_MAX_ENDPOINTS": "0",
            "OTEL_PYTHON_PROFILER_MAX_TASK_NAMES": "7",
            "OTEL_PYTHON_PROFILER_PYROSCOPE_PROFILE_ID": "TRUE",
            "OTEL_PYTHON_PROFILER_NATIVE": "false",
        }
    )
    assert (config.span_attributes, config.max_endpoints) == (False, 0)
    assert config.native is False
    assert (config.max_task_names, config.pyroscope_profile_id) == (7, True)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("OTEL_PYTHON_PROFILER_MAX_ENDPOINTS", "many"),
        ("OTEL_PYTHON_PROFILER_MAX_ENDPOINTS", "-1"),
        ("OTEL_PYTHON_PROFILER_MAX_TASK_NAMES", "10001"),
        ("OTEL_PYTHON_PROFILER_SPAN_ATTRIBUTES", "maybe"),
        ("OTEL_PYTHON_PROFILER_NATIVE", "sometimes"),
    ],
)
def test_a_bad_environment_value_logs_and_keeps_the_default(
    name: str, raw: str, caplog: Any
) -> None:
    with caplog.at_level(logging.WARNING, logger="otelprof"):
        config = resolve_config({name: raw})
    assert config == resolve_config({})
    assert name in caplog.text


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("max_endpoints", -1, "max_endpoints must be between 0 and 10000"),
        ("max_task_names", 2.5, "max_task_names must be a whole number"),
        ("span_attributes", "yes", "span_attributes must be true or false"),
        ("pyroscope_profile_id", 1, "pyroscope_profile_id must be true or false"),
        ("native", "no", "native must be true or false"),
    ],
)
def test_a_bad_explicit_value_raises(key: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_config({}, **{key: value})


def test_the_profiler_wires_its_settings_into_the_correlator() -> None:
    profiler = Profiler(
        exporter=InMemoryProfileExporter(),
        max_endpoints=0,
        max_task_names=3,
        span_attributes=False,
        pyroscope_profile_id=True,
    )
    correlator = profiler.correlation
    assert not correlator.endpoints.enabled
    assert correlator.active.link_to_root and not correlator.active.root_attribute
    assert not correlator.accounting.span_attributes
    assert correlator.accounting.pyroscope_profile_id
    assert correlator.active.reads_thread_state  # the default, where the extension is built
    assert not Profiler(
        exporter=InMemoryProfileExporter(), native=False
    ).correlation.active.reads_thread_state
    assert profiler.sampler.tagger == correlator.tag
