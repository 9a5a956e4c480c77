"""The ``file_storage`` extension: one SQLite database (WAL) holding every persistent queue.

All database work runs on one writer thread. It takes every operation waiting at that moment
and runs them in a single transaction (group commit), so many concurrent requests share one
fsync. A caller's future resolves only after COMMIT returned, i.e. after the data is on disk
(``synchronous=FULL``; ``fsync: false`` selects ``NORMAL``, which survives a crash of the
process but not of the machine). A lock file keeps a second service off the same directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import queue
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

from collector_processor.extension.config import FileStorageConfig

__all__ = ["DATABASE_NAME", "FileStorage", "StorageError"]

logger = logging.getLogger(__name__)

DATABASE_NAME = "otelprof_queue.sqlite"
LOCK_NAME = "otelprof_queue.lock"
MAX_BATCH = 512


class StorageError(Exception):
    """The storage could not be opened or written."""


@dataclass
class _Op:
    kind: str  # "insert" | "read" | "delete"
    table: str
    arg: Any
    future: Optional[asyncio.Future[Any]] = None
    on_commit: Optional[Callable[[Any], None]] = None
    result: Any = field(default=None)


def _quote(table: str) -> str:
    return '"' + table.replace('"', '""') + '"'


class FileStorage:
    """Durable tables of ``(id, payload)`` rows, one per exporter, with async access."""

    def __init__(self, name: str, config: FileStorageConfig) -> None:
        self.name = name
        self.config = config
        self.path = Path(config.directory) / DATABASE_NAME
        self._ops: queue.SimpleQueue[Optional[_Op]] = queue.SimpleQueue()
        self._thread: Optional[threading.Thread] = None
        self._connection: Optional[sqlite3.Connection] = None
        self._lock_fd: Optional[int] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        directory = Path(self.config.directory)
        if not directory.is_dir():
            if not self.config.create_directory:
                raise StorageError(
                    f'file_storage "{self.name}": directory {directory} does not exist '
                    "(create it or set create_directory: true)"
                )
            directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise StorageError(
                f'file_storage "{self.name}": {directory} is in use by another otelprof-collector'
            ) from exc
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, one transaction per batch.
        self._connection = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False
        )
        self._connection.execute("PRAGMA journal_mode=WAL")
        sync = "FULL" if self.config.fsync else "NORMAL"
        self._connection.execute(f"PRAGMA synchronous={sync}")
        self._loop = loop

    def close(self) -> None:
        """Finish queued operations, then close the database and release the lock."""
        if self._thread is not None:
            self._ops.put(None)
            self._thread.join()
            self._thread = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- synchronous setup (before traffic) ------------------------------------------------
    def open_table(self, table: str) -> List[int]:
        """Create ``table`` if needed; return the ids still stored in it, oldest first."""
        # The connection belongs to the writer thread once that runs: set up tables before.
        assert self._connection is not None, "start() first"
        assert self._thread is None, "open tables before the first operation"
        name = _quote(table)
        self._connection.execute(
            f"CREATE TABLE IF NOT EXISTS {name} "
            "(id INTEGER PRIMARY KEY AUTOINCREMENT, payload BLOB NOT NULL)"
        )
        rows = self._connection.execute(f"SELECT id FROM {name} ORDER BY id").fetchall()
        return [int(row[0]) for row in rows]

    # -- async operations ------------------------------------------------------------------
    def insert(
        self, table: str, payload: bytes, on_commit: Callable[[int], None]
    ) -> asyncio.Future[int]:
        """Store ``payload``; ``on_commit(id)`` runs on the loop once it is durable."""
        return self._submit(_Op("insert", table, payload, on_commit=on_commit))

    def read(self, table: str, item_id: int) -> asyncio.Future[Optional[bytes]]:
        return self._submit(_Op("read", table, item_id))

    def delete(self, table: str, item_id: int) -> asyncio.Future[None]:
        return self._submit(_Op("delete", table, item_id))

    def _submit(self, op: _Op) -> asyncio.Future[Any]:
        if self._loop is None or self._connection is None:
            raise StorageError(f'file_storage "{self.name}" is not running')
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"otelprof-storage-{self.name}", daemon=True
            )
            self._thread.start()
        op.future = self._loop.create_future()
        self._ops.put(op)
        return op.future

    # -- writer thread ---------------------------------------------------------------------
    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._ops.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    op = self._ops.get_nowait()
                except queue.Empty:
                    break
                if op is None:
                    stopping = True
                    break
                batch.append(op)
            self._execute(batch)

    def _execute(self, batch: List[_Op]) -> None:
        connection = self._connection
        assert connection is not None
        error: Optional[BaseException] = None
        try:
            connection.execute("BEGIN IMMEDIATE")
            for op in batch:
                op.result = self._apply(connection, op)
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            logger.error('file_storage "%s": transaction failed: %s', self.name, exc)
            error = StorageError(f'file_storage "{self.name}": {exc}')
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
        assert self._loop is not None
        results: List[Tuple[_Op, Optional[BaseException]]] = [(op, error) for op in batch]
        # RuntimeError: the loop is closed, nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(_resolve, results)

    @staticmethod
    def _apply(connection: sqlite3.Connection, op: _Op) -> Any:
        name = _quote(op.table)
        if op.kind == "insert":
            cursor = connection.execute(f"INSERT INTO {name} (payload) VALUES (?)", (op.arg,))
            return cursor.lastrowid
        if op.kind == "read":
            row = connection.execute(
                f"SELECT payload FROM {name} WHERE id = ?", (op.arg,)
            ).fetchone()
            return bytes(row[0]) if row else None
        connection.execute(f"DELETE FROM {name} WHERE id = ?", (op.arg,))
        return None


def _resolve(results: List[Tuple[_Op, Optional[BaseException]]]) -> None:
    """Runs on the event loop: commit callbacks first, then wake the waiters."""
    for op, error in results:
        if error is None and op.on_commit is not None:
            op.on_commit(op.result)
        future = op.future
        if future is None or future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(op.result)
