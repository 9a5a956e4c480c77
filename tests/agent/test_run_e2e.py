"""``otelprof run`` end to end with real subprocesses: files, gRPC and HTTP, exit codes, signals."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from otelprof.conformance import check_request
from tests.agent.e2e import (
    APPS,
    OTELPROF,
    child_env,
    load_requests,
    resource_of,
    run,
    sampled_functions,
)
from tests.export.servers import RecordingGrpcServer, RecordingHttpServer


def test_output_dir_gets_conformant_profiles_and_exit_code_passes_through(tmp_path):
    out = tmp_path / "profiles"
    result = run(
        [
            *OTELPROF,
            "run",
            "--output",
            str(out),
            "--service-name",
            "busy",
            "--",
            str(APPS / "busy_app.py"),
        ],
        env=child_env(BUSY_APP_EXIT="7"),
    )
    assert result.returncode == 7, result.stderr
    assert result.stdout == "busy app done\n"  # the application's output is untouched
    requests = load_requests(out)
    assert requests, result.stderr
    for request in requests:
        assert check_request(request) == []
        assert resource_of(request)["service.name"] == "busy"
    assert any("hot_function" in sampled_functions(r, "cpu") for r in requests)
    assert any("hot_function" in sampled_functions(r, "wall") for r in requests)


def test_module_programs_run_with_dash_m(tmp_path):
    out = tmp_path / "profiles"
    env = child_env(PYTHONPATH=f"{APPS}")
    result = run([*OTELPROF, "run", "--output", str(out), "-m", "busy_app"], env=env)
    assert result.returncode == 0, result.stderr
    requests = load_requests(out)
    cpu_functions = set().union(*(sampled_functions(r) for r in requests))
    assert "hot_function" in cpu_functions, (cpu_functions, result.stderr)


def test_python_dash_i_is_named_instead_of_running_unprofiled_in_silence(tmp_path):
    # -I ignores PYTHONPATH, through which otelprof run starts the profiler: the program still
    # runs (and keeps its exit code), and the user is told why there will be no profiles.
    out = tmp_path / "profiles"
    script = tmp_path / "program.py"
    script.write_text("import sys\nprint('ran')\nsys.exit(7)\n")
    command = [*OTELPROF, "run", "--output", str(out), "--", sys.executable, "-I", str(script)]
    result = run(command)
    assert result.returncode == 7
    assert result.stdout == "ran\n"
    assert "-I (isolated mode) ignores PYTHONPATH" in result.stderr
    assert not load_requests(out)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_exports_over_otlp_to_a_real_loopback_server(protocol):
    server_class = RecordingGrpcServer if protocol == "grpc" else RecordingHttpServer
    with server_class() as server:
        result = run(
            [
                *OTELPROF,
                "run",
                "--endpoint",
                server.endpoint,
                "--protocol",
                protocol,
                "--service-name",
                "net",
                "--",
                str(APPS / "busy_app.py"),
            ],
        )
        assert result.returncode == 0, result.stderr
        assert server.wait_for_requests(1)
        requests = server.requests
    assert all(check_request(r) == [] for r in requests)
    assert resource_of(requests[0])["service.name"] == "net"
    assert any("hot_function" in sampled_functions(r) for r in requests)


def test_signals_reach_the_program_which_keeps_the_pid(tmp_path):
    process = subprocess.Popen(
        [*OTELPROF, "run", "--output", str(tmp_path), "--", str(APPS / "wait_for_signal_app.py")],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line == f"ready {process.pid}\n"  # exec: same process, no wrapper in between
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert "got SIGTERM" in stdout
    assert process.returncode == 42, stderr
    assert load_requests(tmp_path)  # flushed at exit


def test_bad_flag_is_a_clear_error_before_the_program_starts(tmp_path):
    result = run([*OTELPROF, "run", "--rate", "0", "--", str(APPS / "busy_app.py")])
    assert result.returncode == 2
    assert "--rate" in result.stderr and "between 1 and 1000" in result.stderr
    assert "busy app done" not in result.stdout


def test_bad_environment_value_logs_and_uses_the_default(tmp_path):
    result = run(
        [*OTELPROF, "run", "--output", str(tmp_path), "--", str(APPS / "busy_app.py")],
        env=child_env(OTEL_PYTHON_PROFILER_SAMPLING_RATE="fast"),
    )
    assert result.returncode == 0, result.stderr
    warning = "ignoring OTEL_PYTHON_PROFILER_SAMPLING_RATE='fast' (not a number); using 100.0"
    assert result.stderr.count(warning) == 1, result.stderr  # the program's agent says it, once
    (request, *_) = load_requests(tmp_path)
    assert request.resource_profiles[0].scope_profiles[0].profiles[0].period == 10_000_000


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--headers", "novalue"], "--headers: header 'novalue': expected key=value"),
        (["--output", "FILE"], "--output FILE: not a directory"),
        (["--output", "FILE/sub"], "--output FILE/sub: Not a directory"),
    ],
)
def test_bad_run_arguments_are_usage_errors_naming_the_flag(tmp_path, flags, message):
    a_file = tmp_path / "file"
    a_file.write_text("")
    flags = [flag.replace("FILE", str(a_file)) for flag in flags]
    result = run([*OTELPROF, "run", *flags, "--", str(APPS / "busy_app.py")])
    assert result.returncode == 2
    assert f"otelprof run: error: {message.replace('FILE', str(a_file))}" in result.stderr
    assert "Traceback" not in result.stderr and "busy app done" not in result.stdout


def test_a_bad_log_level_names_the_value_and_the_choices(tmp_path):
    result = run(
        [*OTELPROF, "run", "--output", str(tmp_path), "--", str(APPS / "busy_app.py")],
        env=child_env(OTEL_PYTHON_PROFILER_LOG_LEVEL="verbose"),
    )
    assert result.returncode == 0, result.stderr
    assert (
        "ignoring OTEL_PYTHON_PROFILER_LOG_LEVEL='verbose' "
        "(supported: debug, info, warning, error, critical)" in result.stderr
    )


def test_missing_command_is_reported():
    result = run([*OTELPROF, "run", "--", "no-such-program-xyz"])
    assert result.returncode == 127
    assert "command not found: no-such-program-xyz" in result.stderr


def test_default_sigterm_still_flushes_and_dies_of_the_signal(tmp_path):
    process = subprocess.Popen(
        [*OTELPROF, "run", "--output", str(tmp_path), "--", str(APPS / "default_sigterm_app.py")],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline() == f"ready {process.pid}\n"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGTERM, stderr
    assert load_requests(tmp_path)
