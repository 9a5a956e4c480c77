"""Disk full under the persistent queue (a 1 MiB tmpfs): the receiver refuses with a retryable
answer, nothing accepted is lost, and it accepts again once space frees (a file removed, or the
queue drained to a backend that came back)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Callable, Iterator, List

import pytest
from collector.backends import BackgroundLoop, GrpcBackend, free_port, wait_until
from collector.harness import InProcessService, base_config
from collector.payloads import seeds

from collector_processor import otlp_json

from .helpers import FAST_RETRY, Client, client_for, grpc_exporter, queue_rows

EXPORTER = "otlp_grpc"
FILESYSTEM_BYTES = 1024 * 1024
FILLER_BYTES = 300_000
FAST_RETRY_SHORT = {**FAST_RETRY, "max_interval": "50ms"}


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (needs root, as on this project's machines and CI)."""
    directory = tmp_path / "queue"
    directory.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", f"size={FILESYSTEM_BYTES}", "tmpfs", str(directory)]
    result = subprocess.run(mount, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"cannot mount a tmpfs (root needed): {result.stderr}"
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def fill(client: Client, first_seed: int) -> int:
    """Send until the disk refuses three times in a row; returns the next unused seed."""
    seed, refusals = first_seed, 0
    while refusals < 3:
        outcome = client.send(seed)
        assert outcome.ok or outcome.retryable, outcome
        refusals = 0 if outcome.ok else refusals + 1
        seed += 1
        assert seed - first_seed < 1000, "the disk never filled"
    return seed


def test_disk_full_refuses_retryably_loses_nothing_and_recovers(
    bg_loop: BackgroundLoop,
    start_service: Callable[..., InProcessService],
    small_filesystem: Path,
) -> None:
    filler = small_filesystem / "filler"
    filler.write_bytes(b"\0" * FILLER_BYTES)
    backend_port = free_port()
    queue = {"storage": "file_storage", "queue_size": 100_000}  # the disk is the limit here
    config = base_config(
        {EXPORTER: grpc_exporter(backend_port, sending_queue=queue)},
        extensions={"file_storage": {"directory": str(small_filesystem)}},
    )
    service = start_service(config)
    client = client_for(service, samples_per_profile=30)

    seed = fill(client, 0)
    accepted_first = len(client.accepted)
    assert accepted_first > 10
    assert client.unexpected == []
    assert all("not enough free disk space" in detail for _, detail in client.refused)
    # Still up, still refusing the same way.
    assert not client.send(seed).ok and client.refused[-1][0] == seed
    seed += 1

    os.remove(filler)  # space frees: accepted again, without a restart
    assert client.send(seed).ok
    seed = fill(client, seed + 1)
    assert len(client.accepted) > accepted_first + 10
    assert client.unexpected == []
    assert queue_rows(small_filesystem, EXPORTER) == len(client.accepted)

    backend = GrpcBackend(bg_loop, port=backend_port).start()
    try:
        wanted = set(client.accepted)
        wait_until(
            lambda: set(seeds(backend.recorder.received())) == wanted,
            60,
            "every accepted request at the backend",
        )
        wait_until(lambda: queue_rows(small_filesystem, EXPORTER) == 0, 60, "an empty queue")
        assert client.send(seed).ok  # the drained queue gave its space back
        backend.recorder.wait_for(len(wanted) + 1)
    finally:
        backend.stop()
    sender = service.service.exporters[EXPORTER]
    assert sender._failed.value(exporter=EXPORTER) == 0
    print(
        f"disk full: {len(client.accepted)} accepted ({accepted_first} before space freed), "
        f"{len(client.refused)} refused retryably, all accepted delivered, 0 lost"
    )
    client.close()


def test_file_exporter_on_a_full_disk_retries_without_leaving_half_lines(
    start_service: Callable[..., InProcessService], small_filesystem: Path
) -> None:
    filler = small_filesystem / "filler"
    filler.write_bytes(b"\0" * (FILESYSTEM_BYTES - 200_000))
    output = small_filesystem / "out" / "profiles.jsonl"
    exporter = {"path": str(output), "retry_on_failure": FAST_RETRY_SHORT}
    service = start_service(base_config({"file": exporter}))
    sender = service.service.exporters["file"]
    client = client_for(service, samples_per_profile=30)
    seed = 0
    # The memory queue accepts while the file cannot take more: wait for failed writes.
    while sender._retries.value(exporter="file") < 3:
        assert client.send(seed).ok
        seed += 1
        assert seed < 1000, "the disk never filled"
    os.remove(filler)
    wanted = set(client.accepted)

    def written() -> List[int]:
        # Only finished lines: read while a write (or the undoing of one cut short) is under
        # way, the file can end in part of a line, which the writer then completes or removes.
        *lines, _unfinished = output.read_text().split("\n")
        return seeds([otlp_json.loads(line) for line in lines])

    wait_until(lambda: set(written()) == wanted, 60, "every accepted request in the file")
    assert output.read_text().endswith("\n")  # nothing half-written is left once all are in
    assert sorted(written()) == sorted(wanted)  # whole lines only, each once
    assert sender._failed.value(exporter="file") == 0
    client.close()
