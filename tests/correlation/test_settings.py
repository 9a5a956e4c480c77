"""The correlation settings: environment, explicit arguments, validation, and the wiring."""

from __future__ import annotations

import logging
import sys
import time
from types import ModuleType
from typing import Any, Optional

import pytest

from otelprof import Profiler
from otelprof.config import ConfigError, resolve_config
from otelprof.export.memory import InMemoryProfileExporter

_native: Optional[ModuleType]
try:
    from otelprof import _native
except ImportError:  # the optional extension was not built
    _native = None


def test_defaults() -> None:
    config = resolve_config({})
    assert config.span_attributes is True
    assert config.native is True
    assert config.max_endpoints == 100
    assert config.max_task_names == 100
    assert config.pyroscope_profile_id is False
    assert config.span_cpu_clock == "thread"


def test_from_the_environment() -> None:
    config = resolve_config(
        {
            "OTEL_PYTHON_PROFILER_SPAN_ATTRIBUTES": "false",
            "OTEL_PYTHON_PROFILER_MAX_ENDPOINTS": "0",
            "OTEL_PYTHON_PROFILER_MAX_TASK_NAMES": "7",
            "OTEL_PYTHON_PROFILER_PYROSCOPE_PROFILE_ID": "TRUE",
            "OTEL_PYTHON_PROFILER_NATIVE": "false",
            "OTEL_PYTHON_PROFILER_SPAN_CPU_CLOCK": "Task",
        }
    )
    assert config.span_cpu_clock == "task"
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
        ("OTEL_PYTHON_PROFILER_SPAN_CPU_CLOCK", "perf"),
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
        ("span_cpu_clock", "wall", "span_cpu_clock must be one of thread, task"),
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


def test_the_span_cpu_clock_setting_picks_the_span_processors_clock(caplog: Any) -> None:
    def clock_of(**settings: Any) -> Any:
        profiler = Profiler(exporter=InMemoryProfileExporter(), **settings)
        return profiler.correlation.accounting._thread_cpu_ns

    assert clock_of() is time.thread_time_ns
    native_clock = getattr(_native, "span_clock_ns", None) if _native is not None else None
    if sys.platform.startswith("linux") and _native is not None:
        assert native_clock is not None, "otelprof._native was built without span_clock_ns"
    if native_clock is not None:
        assert clock_of(span_cpu_clock="task") is native_clock
    with caplog.at_level(logging.WARNING, logger="otelprof"):
        assert clock_of(span_cpu_clock="task", native=False) is time.thread_time_ns
    assert "SPAN_CPU_CLOCK=task needs the C extension" in caplog.text
