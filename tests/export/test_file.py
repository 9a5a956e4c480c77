"""The file exporter writes one complete, readable ``.otlp.pb`` file per request."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Iterator

import pytest
from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)

from otelprof.export import file as file_module
from otelprof.export.base import ExportStatus
from otelprof.export.file import FileProfileExporter

from .servers import make_request


def read(path: Path) -> ExportProfilesServiceRequest:
    return ExportProfilesServiceRequest.FromString(path.read_bytes())


def test_each_request_becomes_a_readable_file(tmp_path: Path) -> None:
    ticks = iter([1_000, 2_000])
    exporter = FileProfileExporter(str(tmp_path / "out"), clock_ns=lambda: next(ticks))
    first, second = make_request("a"), make_request("b")

    assert exporter.export(first, 10.0).ok
    assert exporter.export(second, 10.0).ok

    pid = os.getpid()
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [f"1000-{pid}-0.otlp.pb", f"2000-{pid}-1.otlp.pb"]
    assert read(tmp_path / "out" / names[0]) == first
    assert read(tmp_path / "out" / names[1]) == second


def test_same_clock_tick_still_gives_distinct_files(tmp_path: Path) -> None:
    exporter = FileProfileExporter(str(tmp_path), clock_ns=lambda: 42)
    for _ in range(3):
        assert exporter.export(make_request(), 10.0).ok
    assert len(list(tmp_path.glob("*.otlp.pb"))) == 3


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_nothing_is_world_writable_even_with_umask_zero(
    tmp_path: Path, permissive_umask: None
) -> None:
    directory = tmp_path / "profiles"
    exporter = FileProfileExporter(str(directory))
    assert exporter.export(make_request(), 10.0).ok

    (written,) = directory.iterdir()
    assert not directory.stat().st_mode & stat.S_IWOTH
    assert not written.stat().st_mode & stat.S_IWOTH
    assert written.stat().st_mode & stat.S_IRUSR  # still readable by its owner


def test_directory_that_is_a_file_is_permanent_and_named(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    exporter = FileProfileExporter(str(blocker / "profiles"))

    result = exporter.export(make_request(), 10.0)

    assert result.status is ExportStatus.PERMANENT
    assert str(blocker) in result.message


def test_full_disk_is_retryable_and_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real full disk needs a mount this test cannot make everywhere; os.write is the seam.
    def no_space(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    exporter = FileProfileExporter(str(tmp_path))
    monkeypatch.setattr(file_module.os, "write", no_space)
    result = exporter.export(make_request(), 10.0)
    monkeypatch.undo()

    assert result.status is ExportStatus.RETRYABLE
    assert "No space left on device" in result.message
    assert str(tmp_path) in result.message
    assert list(tmp_path.iterdir()) == []  # the temporary file was removed
    assert exporter.export(make_request(), 10.0).ok  # space is back: it works again


def test_shutdown_refuses_later_exports(tmp_path: Path) -> None:
    exporter = FileProfileExporter(str(tmp_path))
    exporter.shutdown()
    exporter.shutdown()
    result = exporter.export(make_request(), 10.0)
    assert result.status is ExportStatus.PERMANENT
    assert list(tmp_path.iterdir()) == []
