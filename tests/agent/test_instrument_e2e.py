"""Zero-code start: ``opentelemetry-instrument python app.py`` with OTEL_PYTHON_PROFILER_ENABLED."""

from __future__ import annotations

from otelprof.conformance import check_request
from tests.agent.e2e import APPS, BIN, child_env, load_requests, resource_of, run, sampled_functions


def _instrument(tmp_path, **env):
    return run(
        [
            str(BIN / "opentelemetry-instrument"),
            str(BIN / "python"),
            str(APPS / "instrumented_app.py"),
        ],
        env=child_env(
            OTEL_SERVICE_NAME="instrumented",
            OTEL_TRACES_EXPORTER="none",
            OTEL_METRICS_EXPORTER="none",
            OTEL_LOGS_EXPORTER="none",
            OTEL_PYTHON_PROFILER_OUTPUT_DIR=str(tmp_path),
            **env,
        ),
    )


def test_profiles_under_opentelemetry_instrument_with_the_apps_resource(tmp_path):
    result = _instrument(tmp_path, OTEL_PYTHON_PROFILER_ENABLED="true")
    assert result.returncode == 0, result.stderr
    assert "provider TracerProvider" in result.stdout  # the SDK was configured by the distro
    requests = load_requests(tmp_path)
    assert requests
    for request in requests:
        assert check_request(request) == []
        resource = resource_of(request)
        assert resource["service.name"] == "instrumented"
        # Set by opentelemetry-instrument's configurator on the SDK resource only: proves the
        # profiles carry the application's own resource, the same as its traces.
        assert "telemetry.auto.version" in resource
    assert any("traced_work" in sampled_functions(r) for r in requests)


def test_not_started_unless_enabled(tmp_path):
    result = _instrument(tmp_path)
    assert result.returncode == 3
    assert "profiler not started" in result.stderr
    assert not load_requests(tmp_path)
