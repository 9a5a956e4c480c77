"""The real service as a subprocess: zero loss across kill -9, SIGTERM drain, health, metrics."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import grpc
import pytest
import requests
import yaml

from collector_processor.app import Service
from collector_processor.config import parse_config
from collector_processor.extension.file_storage import StorageError

from .backends import BackgroundLoop, Failure, GrpcBackend, HttpBackend, free_port, wait_until
from .harness import ServiceProcess, base_config, grpc_export, http_post
from .payloads import make_request, seeds

FAST_RETRY = {"initial_interval": "20ms", "max_interval": "200ms", "max_elapsed_time": "0s"}


@pytest.fixture
def processes() -> Iterator[List[ServiceProcess]]:
    started: List[ServiceProcess] = []
    yield started
    for process in started:
        process.ensure_stopped()


def send_all(grpc_port: int, http_port: int, count: int) -> None:
    """Half over gRPC, half over HTTP; each must be accepted."""
    for seed in range(count):
        body = make_request(seed=seed).SerializeToString()
        if seed % 2:
            url = f"http://127.0.0.1:{http_port}/v1development/profiles"
            assert http_post(url, body).status_code == 200
        else:
            assert grpc_export(grpc_port, body)[0] == grpc.StatusCode.OK


def service_config(
    exporter: Dict[str, Any], extensions: Dict[str, Any], ports: Dict[str, int]
) -> Dict[str, Any]:
    return base_config(
        exporter,
        extensions=extensions,
        grpc_port=ports["grpc"],
        http_port=ports["http"],
        metrics_port=ports["metrics"],
    )


def test_accepted_requests_survive_kill_9_while_the_backend_is_down(
    bg_loop: BackgroundLoop, tmp_path: Path, processes: List[ServiceProcess]
) -> None:
    count = 20
    backend_port = free_port()  # nothing listens here until phase two
    ports = {"grpc": free_port(), "http": free_port(), "metrics": free_port()}
    config = service_config(
        {
            "otlp_grpc/backend": {
                "endpoint": f"127.0.0.1:{backend_port}",
                "tls": {"insecure": True},
                "sending_queue": {"storage": "file_storage"},
                "retry_on_failure": FAST_RETRY,
            }
        },
        {"file_storage": {"directory": str(tmp_path / "queue"), "create_directory": True}},
        ports,
    )

    first = ServiceProcess(config, tmp_path, "first")
    processes.append(first)
    first.start()
    send_all(ports["grpc"], ports["http"], count)
    metrics = requests.get(f"http://127.0.0.1:{ports['metrics']}/metrics", timeout=10).text
    assert 'otelprof_collector_exporter_queue_size{exporter="otlp_grpc/backend"} 20' in metrics
    first.kill9()

    backend = GrpcBackend(bg_loop, port=backend_port).start()
    try:
        second = ServiceProcess(config, tmp_path, "second")
        processes.append(second)
        second.start()
        received = backend.recorder.wait_for(count, timeout=60)
        assert sorted(set(seeds(received))) == list(range(count)), second.log()
        assert second.terminate() == 0
    finally:
        backend.stop()
    assert "20 queued request(s) from the previous run" in second.log()


def test_sigterm_drains_the_queue_before_exiting(
    http_backend: HttpBackend, tmp_path: Path, processes: List[ServiceProcess]
) -> None:
    count = 6
    http_backend.recorder.fail_always = Failure(http_status=503)
    ports = {"grpc": free_port(), "http": free_port(), "metrics": free_port()}
    config = service_config(
        {"otlp_http": {"endpoint": http_backend.url, "retry_on_failure": FAST_RETRY}}, {}, ports
    )
    service = ServiceProcess(config, tmp_path)
    processes.append(service)
    service.start(["--shutdown-timeout", "60s"])
    send_all(ports["grpc"], ports["http"], count)
    wait_until(lambda: http_backend.recorder.attempts >= count, what="every request attempted")

    assert service.process is not None
    service.process.send_signal(15)  # SIGTERM

    def health_gone() -> bool:
        try:
            url = f"http://127.0.0.1:{service.health_port}/"
            return requests.get(url, timeout=1).status_code != 200
        except requests.RequestException:
            return True

    wait_until(health_gone, what="the service to start shutting down")
    assert http_backend.recorder.received() == []  # nothing was delivered before shutdown began
    http_backend.recorder.fail_always = None  # the backend recovers while the queue drains
    assert service.process.wait(60) == 0
    assert sorted(seeds(http_backend.recorder.received())) == list(range(count)), service.log()


def test_health_check_and_metrics(
    http_backend: HttpBackend, tmp_path: Path, processes: List[ServiceProcess]
) -> None:
    ports = {"grpc": free_port(), "http": free_port(), "metrics": free_port()}
    config = service_config({"otlp_http": {"endpoint": http_backend.url}}, {}, ports)
    service = ServiceProcess(config, tmp_path)
    processes.append(service)
    service.start()
    health = requests.get(f"http://127.0.0.1:{service.health_port}/", timeout=10)
    assert health.status_code == 200
    assert health.json()["status"] == "Server available"
    send_all(ports["grpc"], ports["http"], 2)
    bad = grpc_export(ports["grpc"], b"\xff")
    assert bad[0] == grpc.StatusCode.INVALID_ARGUMENT
    http_backend.recorder.wait_for(2)

    def scrape() -> str:
        return requests.get(f"http://127.0.0.1:{ports['metrics']}/metrics", timeout=10).text

    wait_until(lambda: 'exporter_sent_requests_total{exporter="otlp_http"} 2' in scrape())
    text = scrape()
    for line in (
        'otelprof_collector_receiver_accepted_requests_total{receiver="otlp",transport="grpc"} 1',
        'otelprof_collector_receiver_accepted_requests_total{receiver="otlp",transport="http"} 1',
        'otelprof_collector_receiver_received_requests_total{receiver="otlp",transport="grpc"} 2',
        'otelprof_collector_receiver_refused_requests_total{reason="invalid",receiver="otlp",'
        'transport="grpc"} 1',
        "# TYPE otelprof_collector_exporter_queue_size gauge",
    ):
        assert line in text, text
    assert service.terminate() == 0


def test_a_port_in_use_is_a_clear_start_failure(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = base_config({"file": {"path": str(tmp_path / "out.jsonl")}}, grpc_port=port)
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(config))
        result = subprocess.run(
            [sys.executable, "-m", "collector_processor", "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert "otelprof-collector could not start" in result.stderr
    assert f"127.0.0.1:{port}" in result.stderr


@pytest.mark.parametrize("module", ["yaml", "aiohttp"])
def test_a_missing_collector_extra_is_one_line_naming_the_install(
    tmp_path: Path, module: str
) -> None:
    # As after `pip install otelprof` without [collector]: the import of the module fails.
    program = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "from collector_processor.__main__ import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program, "--config", str(tmp_path / "c.yaml"), "--validate"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"otelprof-collector: the Python module '{module}' is missing: "
        "install otelprof[collector] (pip install 'otelprof[collector]')"
    ]


def _start_failure(
    bg_loop: BackgroundLoop, tmp_path: Path, case: str, busy_port: int
) -> Tuple[str, str]:
    """Start a service set up to fail as ``case`` says; (its error, the expected start)."""
    out = tmp_path / "out.jsonl"
    exporters: Dict[str, Any] = {"file": {"path": str(out)}}
    extensions: Dict[str, Any] = {}
    kwargs: Dict[str, Any] = {}
    expected = ""
    if case == "http_receiver":
        kwargs["http_port"] = busy_port
        expected = (
            f"receivers::otlp::protocols::http::endpoint: cannot listen on 127.0.0.1:{busy_port}: "
        )
    elif case == "health_check":
        extensions["health_check"] = {"endpoint": f"127.0.0.1:{busy_port}"}
        expected = f"extensions::health_check::endpoint: cannot listen on 127.0.0.1:{busy_port}: "
    elif case == "metrics":
        kwargs["metrics_port"] = busy_port
        expected = f"service::telemetry::metrics::address: cannot listen on 127.0.0.1:{busy_port}: "
    elif case == "file_parent_is_a_file":
        out.write_text("")
        exporters["file"]["path"] = str(out / "x.jsonl")
        expected = f"exporters::file::path: cannot open {out / 'x.jsonl'}: {out} is not a directory"
    elif case == "file_path_is_a_directory":
        out.mkdir()
        expected = f"exporters::file::path: cannot open {out}: Is a directory"
    else:
        assert case.startswith("storage_directory_is_a_file")
        directory = tmp_path / "queue"
        directory.write_text("")
        create = case.endswith("created")
        extensions["file_storage"] = {"directory": str(directory), "create_directory": create}
        exporters["file"]["sending_queue"] = {"storage": "file_storage"}
        expected = f"extensions::file_storage::directory: {directory} is not a directory"
    config = base_config(exporters, extensions=extensions, **kwargs)
    service = Service(parse_config(config), shutdown_timeout_seconds=1.0)
    with pytest.raises((OSError, StorageError)) as caught:
        bg_loop.run(service.start())
    return str(caught.value), expected


@pytest.mark.parametrize(
    "case",
    [
        "http_receiver",
        "health_check",
        "metrics",
        "file_parent_is_a_file",
        "file_path_is_a_directory",
        "storage_directory_is_a_file",
        "storage_directory_is_a_file_to_be_created",
    ],
)
def test_a_start_failure_names_the_component_and_key(
    bg_loop: BackgroundLoop, tmp_path: Path, case: str
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        error, expected = _start_failure(bg_loop, tmp_path, case, busy.getsockname()[1])
    assert error.startswith(expected), error
