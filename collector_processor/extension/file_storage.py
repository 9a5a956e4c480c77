"""The ``file_storage`` extension: one SQLite database (WAL) holding every persistent queue.

All database work runs on one writer thread. It takes every operation waiting at that moment
and runs them in a single transaction (group commit), so many concurrent requests share one
fsync. A caller's future resolves only after COMMIT returned, i.e. after the data is on disk
(``synchronous=FULL``; ``fsync: false`` selects ``NORMAL``, which survives a crash of the
process but not of the machine). A lock file keeps a second service off the same directory.

A full disk must not wedge the queue: a delete (after a send) and a checkpoint (moving the WAL
into the database) need free space too. So the WAL is kept small (checkpointed and truncated
past ``wal_limit``), inserts are refused with :class:`StorageFull` while free space would fall
below a headroom of twice that limit, and a failed batch is retried op by op so that reads and
deletes never fail because an insert next to them did. Files are created owner-only (0600,
directory 0700): they hold profile data.
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
from typing import Any, Callable, Dict, List, Optional, Tuple

from collector_processor.extension.config import FileStorageConfig

__all__ = ["DATABASE_NAME", "FileStorage", "StorageError", "StorageFull"]

logger = logging.getLogger(__name__)

DATABASE_NAME = "otelprof_queue.sqlite"
LOCK_NAME = "otelprof_queue.lock"
MAX_BATCH = 512
# The WAL limit scales with the file system (a 1 MiB tmpfs in tests, terabytes in production).
MAX_WAL_LIMIT_BYTES = 4 * 1024 * 1024
MIN_WAL_LIMIT_BYTES = 64 * 1024


class StorageError(Exception):
    """The storage could not be opened or written."""


class StorageFull(StorageError):
    """Not enough free disk space to store a request and still be able to delete and checkpoint."""


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
        self.wal_limit_bytes = MAX_WAL_LIMIT_BYTES
        self._page_size = 4096
        self._full = False  # last verdict of the space check, to log only its changes

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            self._open(loop)
        except (OSError, sqlite3.Error) as exc:
            self.close()
            # The bare error ("[Errno 17] File exists") names neither the extension nor the key.
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise StorageError(
                f"extensions::{self.name}::directory: cannot open the queue database in "
                f"{self.config.directory}: {detail}"
            ) from None

    def _open(self, loop: asyncio.AbstractEventLoop) -> None:
        directory = Path(self.config.directory)
        if directory.exists() and not directory.is_dir():
            raise StorageError(
                f"extensions::{self.name}::directory: {directory} is not a directory"
            )
        if not directory.is_dir():
            if not self.config.create_directory:
                raise StorageError(
                    f'file_storage "{self.name}": directory {directory} does not exist '
                    "(create it or set create_directory: true)"
                )
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock_fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise StorageError(
                f'file_storage "{self.name}": {directory} is in use by another otelprof-collector'
            ) from exc
        # Owner-only before SQLite opens it; SQLite gives its -wal and -shm files the same mode.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, one transaction per batch.
        self._connection = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False
        )
        self._connection.execute("PRAGMA journal_mode=WAL")
        sync = "FULL" if self.config.fsync else "NORMAL"
        self._connection.execute(f"PRAGMA synchronous={sync}")
        stat = os.statvfs(directory)
        self.wal_limit_bytes = min(
            max(stat.f_blocks * stat.f_frsize // 16, MIN_WAL_LIMIT_BYTES), MAX_WAL_LIMIT_BYTES
        )
        self._page_size = int(self._connection.execute("PRAGMA page_size").fetchone()[0])
        pages = max(self.wal_limit_bytes // self._page_size, 1)
        self._connection.execute(f"PRAGMA wal_autocheckpoint={pages}")
        self._connection.execute(f"PRAGMA journal_size_limit={self.wal_limit_bytes}")
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

    def stored_rows(self) -> Dict[str, int]:
        """Rows per table, for every table in the database (queues of exporters that are
        no longer configured included)."""
        assert self._connection is not None, "start() first"
        assert self._thread is None, "count before the first operation"
        names = self._connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"  # SQLite's own (sqlite_sequence)
        ).fetchall()
        counts = {}
        for (name,) in names:
            row = self._connection.execute(f"SELECT COUNT(*) FROM {_quote(name)}").fetchone()
            counts[str(name)] = int(row[0])
        return counts

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
            # A batch's inserts all sit in the WAL until it commits: bound their bytes too.
            batch_bytes = _insert_bytes(first)
            while len(batch) < MAX_BATCH and batch_bytes < self.wal_limit_bytes:
                try:
                    op = self._ops.get_nowait()
                except queue.Empty:
                    break
                if op is None:
                    stopping = True
                    break
                batch.append(op)
                batch_bytes += _insert_bytes(op)
            self._execute(batch)

    def _space_error(self, insert_bytes: int) -> Optional[StorageError]:
        """StorageFull if writing ``insert_bytes`` would eat the headroom deletes need."""
        if not insert_bytes:
            return None
        connection = self._connection
        assert connection is not None
        try:
            free, full = self._space(connection, insert_bytes)
            if full and self._wal_bytes():
                # Deletes land in the WAL first, and only a commit past the autocheckpoint size
                # moves them into the database and truncates it: with inserts refused and the
                # queue drained, nothing else would, and the WAL's disk space would stay taken.
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                free, full = self._space(connection, insert_bytes)
        except (OSError, sqlite3.Error):
            return None  # cannot tell: let SQLite try
        if full != self._full:
            self._full = full
            logger.warning(
                'file_storage "%s": %d KiB free in %s: %s',
                self.name,
                free // 1024,
                self.path.parent,
                "refusing new requests until space frees" if full else "accepting again",
            )
        if full:
            return StorageFull(
                f'file_storage "{self.name}": not enough free disk space for the persistent queue'
            )
        return None

    def _wal_bytes(self) -> int:
        try:
            return os.stat(f"{self.path}-wal").st_size
        except FileNotFoundError:
            return 0

    def _space(self, connection: sqlite3.Connection, insert_bytes: int) -> Tuple[int, bool]:
        """(free bytes on the disk, whether writing ``insert_bytes`` would eat the headroom)."""
        stat = os.statvfs(self.path.parent)
        free = stat.f_bavail * stat.f_frsize
        # Pages freed by deletes are reused by inserts at checkpoint time.
        reusable = int(connection.execute("PRAGMA freelist_count").fetchone()[0])
        headroom = 2 * self.wal_limit_bytes
        return free, (
            free < headroom or free + reusable * self._page_size < insert_bytes + headroom
        )

    def _transaction(self, ops: List[_Op]) -> Optional[StorageError]:
        connection = self._connection
        assert connection is not None
        try:
            connection.execute("BEGIN IMMEDIATE")
            for op in ops:
                op.result = self._apply(connection, op)
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            return StorageError(f'file_storage "{self.name}": {exc}')
        return None

    def _execute(self, batch: List[_Op]) -> None:
        results: List[Tuple[_Op, Optional[BaseException]]] = []
        space_error = self._space_error(sum(map(_insert_bytes, batch)))
        if space_error is not None:
            results = [(op, space_error) for op in batch if op.kind == "insert"]
            batch = [op for op in batch if op.kind != "insert"]
        if batch:
            error = self._transaction(batch)
            if error is None:
                results.extend((op, None) for op in batch)
            else:
                # One failing op must not fail its neighbours (a read next to an insert on a
                # full disk): retry each alone.
                logger.error('file_storage "%s": transaction failed: %s', self.name, error)
                results.extend((op, self._transaction([op])) for op in batch)
        assert self._loop is not None
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


def _insert_bytes(op: _Op) -> int:
    return len(op.arg) if op.kind == "insert" else 0


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
