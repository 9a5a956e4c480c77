"""File exporter: each request becomes ``<unix_nanos>-<pid>-<seq>.otlp.pb``, written atomically."""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from otelprof import _unpatched
from otelprof.export._common import SHUT_DOWN
from otelprof.export.base import ExportResult, ExportStatus

if TYPE_CHECKING:
    from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
        ExportProfilesServiceRequest,
    )

SUFFIX = ".otlp.pb"
# A full disk (or quota) may free up; anything else (permissions, read-only fs, a file where the
# directory should be) will not fix itself.
_RETRYABLE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# The umask decides, except that nothing we create is ever writable by others.
_FILE_MODE = 0o664
_DIR_MODE = 0o775


class FileProfileExporter:
    """Writes each request, serialized as an ``ExportProfilesServiceRequest``, to its own file.

    Files appear complete or not at all (written under a hidden temporary name, then renamed),
    so a reader globbing ``*.otlp.pb`` never sees half a profile. The pid in the name keeps
    forked children from colliding with their parent.
    """

    def __init__(self, directory: str, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self._directory = Path(directory)
        self._clock_ns = clock_ns
        self._sequence = itertools.count()
        self._lock = _unpatched.allocate_lock()
        self._shutdown = False

    @property
    def directory(self) -> Path:
        """Where files are written."""
        return self._directory

    def export(self, request: ExportProfilesServiceRequest, timeout_seconds: float) -> ExportResult:
        """Write one file; ``timeout_seconds`` is not used (local writes do not hang)."""
        if self._shutdown:
            return SHUT_DOWN
        with self._lock:
            sequence = next(self._sequence)
        name = f"{self._clock_ns()}-{os.getpid()}-{sequence}{SUFFIX}"
        path = self._directory / name
        # Hidden and not ending in .otlp.pb: readers globbing for profiles skip it.
        tmp_path = self._directory / f".{name}.tmp"
        try:
            data = request.SerializeToString()
        except Exception as error:
            return ExportResult(ExportStatus.PERMANENT, f"cannot serialize request: {error!r}")
        try:
            self._directory.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
            _write_new_file(tmp_path, data)
            tmp_path.replace(path)
        except OSError as error:
            _remove_quietly(tmp_path)
            status = (
                ExportStatus.RETRYABLE
                if error.errno in _RETRYABLE_ERRNOS
                else ExportStatus.PERMANENT
            )
            where = error.filename or path
            return ExportResult(
                status, f"cannot write profile to {where}: {error.strerror or error}"
            )
        return ExportResult(ExportStatus.SUCCESS)

    def shutdown(self) -> None:
        """Later exports return PERMANENT; nothing to release. Safe to call twice."""
        self._shutdown = True


def _write_new_file(path: Path, data: bytes) -> None:
    # O_EXCL: never write through a file or symlink someone else put under our name.
    fd = os.open(
        path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), _FILE_MODE
    )
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    finally:
        os.close(fd)


def _remove_quietly(path: Path) -> None:
    # Never written, or already gone: nothing to clean.
    with contextlib.suppress(OSError):
        path.unlink()
