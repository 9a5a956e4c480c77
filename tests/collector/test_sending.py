"""Sending queues, retry against failing backends, fan-out and persistence across restarts."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any, Callable, Dict

import grpc
import pytest

from .backends import BackgroundLoop, Failure, GrpcBackend, HttpBackend, free_port, wait_until
from .harness import InProcessService, base_config, grpc_export, http_post
from .payloads import make_request, resource_attributes, seeds

StartService = Callable[..., InProcessService]
FAST_RETRY = {"initial_interval": "10ms", "max_interval": "50ms", "max_elapsed_time": "0s"}


def grpc_exporter(endpoint: str, **extra: Any) -> Dict[str, Any]:
    return {
        "endpoint": endpoint,
        "tls": {"insecure": True},
        "retry_on_failure": FAST_RETRY,
        **extra,
    }


def counter(service: InProcessService, name: str, **labels: str) -> float:
    return service.service.metrics.counter(name, "").value(**labels)


def test_retries_until_a_failing_backend_recovers(
    grpc_backend: GrpcBackend, start_service: StartService
) -> None:
    grpc_backend.recorder.failures.extend([Failure(), Failure(), Failure()])
    service = start_service(base_config({"otlp_grpc": grpc_exporter(grpc_backend.endpoint)}))
    request = make_request()
    assert grpc_export(service.grpc_port, request.SerializeToString())[0] == grpc.StatusCode.OK
    assert grpc_backend.recorder.wait_for(1) == [request]
    assert grpc_backend.recorder.attempts == 4
    assert counter(service, "exporter_retries_total", exporter="otlp_grpc") == 3
    # The backend records the request before the sender has its answer: wait for the count.
    wait_until(lambda: counter(service, "exporter_sent_requests_total", exporter="otlp_grpc") == 1)


def test_permanent_failure_is_dropped_without_retry(
    grpc_backend: GrpcBackend, start_service: StartService
) -> None:
    grpc_backend.recorder.failures.append(Failure(grpc.StatusCode.INVALID_ARGUMENT))
    service = start_service(base_config({"otlp_grpc": grpc_exporter(grpc_backend.endpoint)}))
    grpc_export(service.grpc_port, make_request(seed=1).SerializeToString())
    # The second only once the first is dropped: sent together, either may reach the failing
    # backend first.
    wait_until(
        lambda: counter(service, "exporter_send_failed_requests_total", exporter="otlp_grpc") == 1
    )
    grpc_export(service.grpc_port, make_request(seed=2).SerializeToString())
    assert seeds(grpc_backend.recorder.wait_for(1)) == [2]
    assert grpc_backend.recorder.attempts == 2


def test_gives_up_after_max_elapsed_time(
    grpc_backend: GrpcBackend, start_service: StartService
) -> None:
    grpc_backend.recorder.fail_always = Failure()
    retry = {"initial_interval": "10ms", "max_interval": "20ms", "max_elapsed_time": "100ms"}
    exporter = {"otlp_grpc": grpc_exporter(grpc_backend.endpoint, retry_on_failure=retry)}
    service = start_service(base_config(exporter))
    grpc_export(service.grpc_port, make_request().SerializeToString())
    wait_until(
        lambda: counter(service, "exporter_send_failed_requests_total", exporter="otlp_grpc") == 1
    )
    assert service.service.exporters["otlp_grpc"].queue.size == 0  # type: ignore[union-attr]
    assert grpc_backend.recorder.attempts > 1


def test_fan_out_to_every_exporter(
    grpc_backend: GrpcBackend,
    http_backend: HttpBackend,
    start_service: StartService,
    tmp_path: Path,
) -> None:
    path = tmp_path / "profiles.jsonl"
    exporters = {
        "otlp_grpc": grpc_exporter(grpc_backend.endpoint),
        "otlphttp": {"endpoint": http_backend.url, "retry_on_failure": FAST_RETRY},
        "file": {"path": str(path)},
    }
    service = start_service(base_config(exporters))
    request = make_request()
    assert http_post(service.http_url, request.SerializeToString()).status_code == 200
    assert grpc_backend.recorder.wait_for(1) == [request]
    assert http_backend.recorder.wait_for(1) == [request]
    wait_until(lambda: path.exists() and path.read_text().count("\n") == 1, what="the file line")


def test_two_pipelines_get_their_own_processing(
    grpc_backend: GrpcBackend, http_backend: HttpBackend, start_service: StartService
) -> None:
    config = base_config(
        {
            "otlp_grpc": grpc_exporter(grpc_backend.endpoint),
            "otlp_http": {"endpoint": http_backend.url},
        },
        processors={
            "resource/a": {"attributes": [{"key": "route", "value": "a", "action": "insert"}]},
            "resource/b": {"attributes": [{"key": "route", "value": "b", "action": "insert"}]},
        },
    )
    config["service"]["pipelines"] = {
        "profiles/a": {
            "receivers": ["otlp"],
            "processors": ["resource/a"],
            "exporters": ["otlp_grpc"],
        },
        "profiles/b": {
            "receivers": ["otlp"],
            "processors": ["resource/b"],
            "exporters": ["otlp_http"],
        },
    }
    service = start_service(config)
    grpc_export(service.grpc_port, make_request().SerializeToString())
    assert resource_attributes(grpc_backend.recorder.wait_for(1)[0])["route"] == "a"
    assert resource_attributes(http_backend.recorder.wait_for(1)[0])["route"] == "b"


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (
            Failure(grpc.StatusCode.INVALID_ARGUMENT, message="nope"),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (Failure(grpc.StatusCode.UNAVAILABLE, message="down"), grpc.StatusCode.UNAVAILABLE),
    ],
)
def test_without_a_queue_the_client_sees_the_export_outcome(
    grpc_backend: GrpcBackend, start_service: StartService, failure: Failure, code: grpc.StatusCode
) -> None:
    grpc_backend.recorder.failures.append(failure)
    exporter = grpc_exporter(
        grpc_backend.endpoint, sending_queue={"enabled": False}, retry_on_failure={"enabled": False}
    )
    service = start_service(base_config({"otlp_grpc": exporter}))
    got, details, _ = grpc_export(service.grpc_port, make_request().SerializeToString())
    assert (got, details) == (code, f"{failure.grpc_code.name}: {failure.message}")
    assert (
        grpc_export(service.grpc_port, make_request().SerializeToString())[0] == grpc.StatusCode.OK
    )
    assert len(grpc_backend.recorder.received()) == 1  # sent before the answer


def test_in_memory_queue_drops_and_counts_at_the_shutdown_deadline(
    bg_loop: BackgroundLoop,
) -> None:
    exporter = {"otlp_grpc": grpc_exporter(f"127.0.0.1:{free_port()}")}
    service = InProcessService(bg_loop, base_config(exporter), shutdown_timeout=0.2).start()
    for seed in range(3):
        assert grpc_export(service.grpc_port, make_request(seed=seed).SerializeToString())[0] == (
            grpc.StatusCode.OK
        )
    service.stop()
    assert counter(service, "exporter_dropped_requests_total", exporter="otlp_grpc") == 3


def stored_rows(directory: Path, table: str) -> int:
    with sqlite3.connect(directory / "otelprof_queue.sqlite") as db:
        return int(db.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0])


def test_persistent_queue_survives_a_restart_and_is_emptied_by_delivery(
    bg_loop: BackgroundLoop, tmp_path: Path
) -> None:
    port = free_port()
    config = base_config(
        {
            "otlp_grpc/backend": grpc_exporter(
                f"127.0.0.1:{port}", sending_queue={"storage": "file_storage"}
            )
        },
        extensions={"file_storage": {"directory": str(tmp_path)}},
    )
    first = InProcessService(bg_loop, config, shutdown_timeout=0.2).start()
    for seed in range(5):
        body = make_request(seed=seed).SerializeToString()
        assert grpc_export(first.grpc_port, body)[0] == grpc.StatusCode.OK
    first.stop()
    assert stored_rows(tmp_path, "otlp_grpc/backend") == 5
    assert counter(first, "exporter_dropped_requests_total", exporter="otlp_grpc/backend") == 0

    backend = GrpcBackend(bg_loop, port=port).start()
    try:
        second = InProcessService(bg_loop, config).start()
        assert seeds(backend.recorder.wait_for(5)) == [0, 1, 2, 3, 4]
        second.stop()
    finally:
        backend.stop()
    assert stored_rows(tmp_path, "otlp_grpc/backend") == 0


def test_a_second_service_cannot_use_the_same_storage_directory(
    bg_loop: BackgroundLoop, tmp_path: Path
) -> None:
    config = base_config(
        {
            "otlp_grpc": grpc_exporter(
                f"127.0.0.1:{free_port()}", sending_queue={"storage": "file_storage"}
            )
        },
        extensions={"file_storage": {"directory": str(tmp_path)}},
    )
    first = InProcessService(bg_loop, config).start()
    try:
        with pytest.raises(Exception, match="is in use by another otelprof-collector"):
            InProcessService(bg_loop, config).start()
    finally:
        first.stop()


def test_missing_storage_directory_is_created_only_when_asked(
    bg_loop: BackgroundLoop, tmp_path: Path
) -> None:
    directory = tmp_path / "queue"
    exporter = {
        "otlp_grpc": grpc_exporter(
            f"127.0.0.1:{free_port()}", sending_queue={"storage": "file_storage"}
        )
    }
    config = base_config(exporter, extensions={"file_storage": {"directory": str(directory)}})
    with pytest.raises(Exception, match="does not exist"):
        InProcessService(bg_loop, config).start()
    config["extensions"]["file_storage"]["create_directory"] = True
    InProcessService(bg_loop, config).start().stop()
    assert (directory / "otelprof_queue.sqlite").exists()


def test_queued_rows_of_an_exporter_no_longer_configured_are_named_at_start(
    bg_loop: BackgroundLoop, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def config(exporter_id: str) -> Dict[str, Any]:
        exporter = grpc_exporter(
            f"127.0.0.1:{free_port()}", sending_queue={"storage": "file_storage/fs"}
        )
        return base_config(
            {exporter_id: exporter}, extensions={"file_storage/fs": {"directory": str(tmp_path)}}
        )

    first = InProcessService(bg_loop, config("otlp_grpc/old"), shutdown_timeout=0.2).start()
    for seed in range(3):
        body = make_request(seed=seed).SerializeToString()
        assert grpc_export(first.grpc_port, body)[0] == grpc.StatusCode.OK
    first.stop()

    with caplog.at_level(logging.WARNING, logger="collector_processor"):
        InProcessService(bg_loop, config("otlp_grpc/new")).start().stop()
    assert (
        'file_storage "file_storage/fs": 3 queued request(s) of exporter "otlp_grpc/old", '
        "which is not configured to use this storage: kept on disk, not sent; to send them, "
        'run an exporter with id "otlp_grpc/old" and sending_queue::storage: file_storage/fs '
        "in a pipeline"
    ) in caplog.messages
    assert not any("otlp_grpc/new" in message for message in caplog.messages if "queued" in message)
    assert stored_rows(tmp_path, "otlp_grpc/old") == 3  # kept


@pytest.mark.parametrize(
    ("queue", "outcome"),
    [
        ({"queue_size": 5, "num_consumers": 1}, "dropped"),
        ({}, "dropped"),  # 10 consumers: every request is held by one, none is waiting
        ({"storage": "file_storage"}, "kept on disk for the next start"),
    ],
    ids=["one_consumer", "ten_consumers", "persistent"],
)
def test_shutdown_reports_every_request_not_sent_also_those_consumers_hold(
    bg_loop: BackgroundLoop,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    queue: Dict[str, Any],
    outcome: str,
) -> None:
    exporter = {"otlp_grpc": grpc_exporter(f"127.0.0.1:{free_port()}", sending_queue=queue)}
    extensions = {"file_storage": {"directory": str(tmp_path)}} if "storage" in queue else None
    config = base_config(exporter, extensions=extensions)
    service = InProcessService(bg_loop, config, shutdown_timeout=0.2).start()
    for seed in range(3):
        body = make_request(seed=seed).SerializeToString()
        assert grpc_export(service.grpc_port, body)[0] == grpc.StatusCode.OK
    with caplog.at_level(logging.WARNING, logger="collector_processor"):
        service.stop()
    assert [m for m in caplog.messages if "shutdown deadline" in m] == [
        f'exporter "otlp_grpc": 3 request(s) not sent before the shutdown deadline ({outcome})'
    ]
    dropped = counter(service, "exporter_dropped_requests_total", exporter="otlp_grpc")
    assert dropped == (0 if "storage" in queue else 3)
