"""The ``file`` exporter: one OTLP JSON request per line, rotated by size like lumberjack."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import io
import os
from pathlib import Path
from typing import Optional

from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)

from collector_processor import otlp_json
from collector_processor.errors import PermanentError, RetryableError
from collector_processor.exporter.config import FileExporterConfig

__all__ = ["FileExporter", "backup_name"]

MEGABYTE = 1024 * 1024
FILE_MODE = 0o600
DIRECTORY_MODE = 0o700


def backup_name(path: Path, when: datetime.datetime) -> Path:
    """``name-2006-01-02T15-04-05.000.ext``: the backup naming of the Collector's file exporter."""
    stamp = when.strftime("%Y-%m-%dT%H-%M-%S.") + f"{when.microsecond // 1000:03d}"
    return path.with_name(f"{path.stem}-{stamp}{path.suffix}")


class FileExporter:
    """Appends each request as a line; writes happen on a worker thread, one at a time."""

    def __init__(self, exporter_id: str, config: FileExporterConfig) -> None:
        self.id = exporter_id
        self.config = config
        self.path = Path(config.path)
        self._file: Optional[io.FileIO] = None
        self._size = 0
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        # Profiles name the code, files and services of the hosts that sent them: directories
        # and files this exporter creates are owner-only whatever the umask. Existing ones
        # keep the mode the operator gave them.
        try:
            self.path.parent.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
            self._open()
        except OSError as exc:
            # "[Errno 17] File exists" alone names neither the exporter nor the file.
            blocker = next((p for p in self.path.parents if p.exists() and not p.is_dir()), None)
            reason = f"{blocker} is not a directory" if blocker else exc.strerror or str(exc)
            raise OSError(
                f"exporters::{self.id}::path: cannot open {self.path}: {reason}"
            ) from None

    def _open(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        self._file = os.fdopen(fd, "ab", buffering=0)
        self._size = self._file.tell()

    def _rotate(self) -> None:
        assert self._file is not None
        self._file.close()
        self._file = None
        # UTC, as lumberjack's default (localtime: false).
        now = datetime.datetime.now(datetime.timezone.utc)
        while backup_name(self.path, now).exists():  # two rotations in one millisecond
            now += datetime.timedelta(milliseconds=1)
        backup = backup_name(self.path, now)
        # The path never goes missing (for tail -F, log shippers, anyone checking it): the old
        # file gets its backup name as a second link, then a new file replaces it atomically.
        fresh = self.path.with_name(f".{self.path.name}.new")
        fd = os.open(fresh, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        linked = False
        try:
            try:
                os.link(self.path, backup)
                linked = True
            except OSError:  # no hard links on this file system: a moment without the file
                os.replace(self.path, backup)
            os.replace(fresh, self.path)
        except OSError:
            os.close(fd)
            fresh.unlink(missing_ok=True)
            if linked:
                backup.unlink(missing_ok=True)
            self._open()  # keep appending to what is there
            raise
        self._file = os.fdopen(fd, "ab", buffering=0)
        self._size = 0
        self._prune()

    def _prune(self) -> None:
        if self.config.max_backups == 0:
            return  # 0 keeps every backup, as lumberjack
        pattern = f"{self.path.stem}-*{self.path.suffix}"
        backups = sorted(self.path.parent.glob(pattern))
        for old in backups[: -self.config.max_backups]:
            old.unlink(missing_ok=True)

    def _write(self, line: bytes) -> None:
        assert self._file is not None
        limit = self.config.max_megabytes * MEGABYTE
        if self.config.rotation and self._size and self._size + len(line) > limit:
            self._rotate()
        assert self._file is not None
        # Unbuffered: each line is with the OS before the queue forgets the item (survives a
        # crash of the service). A write cut short (disk full) is undone, so the retry does not
        # leave half a line in front of the whole one.
        view, written = memoryview(line), 0
        try:
            while written < len(line):
                written += self._file.write(view[written:]) or 0
        except OSError:
            if written:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._file.fileno(), self._size)
            raise
        self._size += len(line)

    async def export(self, payload: bytes) -> None:
        request = ExportProfilesServiceRequest()
        try:
            request.ParseFromString(payload)
        except Exception as exc:
            raise PermanentError(f"stored request is not readable: {exc}") from None
        line = (otlp_json.dumps(request) + "\n").encode("utf-8")
        async with self._lock:
            try:
                await asyncio.get_running_loop().run_in_executor(None, self._write, line)
            except OSError as exc:
                raise RetryableError(f"cannot write {self.path}: {exc.strerror}") from None

    async def shutdown(self) -> None:
        async with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
