"""Bounded sending queues: in memory, or persistent in a ``file_storage`` SQLite table.

A request takes a slot with :meth:`reserve` (synchronous, so a fan-out can check every queue
before writing to any), is written with :meth:`put`, handed to a consumer by :meth:`get`, and
frees its slot only when the consumer calls :meth:`ack` (sent, or failed for good). A
persistent item that is never acknowledged (crash, shutdown mid-retry) is delivered again
after a restart: at-least-once.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass
from typing import Deque, Optional, Union

from collector_processor.extension.file_storage import FileStorage, StorageError

__all__ = ["MemoryQueue", "PersistentQueue", "QueueItem", "SendingQueue"]

logger = logging.getLogger(__name__)

DELETE_RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class QueueItem:
    id: int
    payload: bytes


class _Bounded:
    """Slot accounting and the consumer wake-up shared by both queues."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._reserved = 0
        self._stored = 0  # written and not yet acknowledged (pending + in flight)
        self._closed = False
        self._ready = asyncio.Event()

    @property
    def size(self) -> int:
        """Requests that hold a slot: reserved, waiting or being sent."""
        return self._reserved + self._stored

    def reserve(self) -> bool:
        if self._closed or self.size >= self.capacity:
            return False
        self._reserved += 1
        return True

    def release(self) -> None:
        """Give back a reservation that will not be written."""
        self._reserved -= 1

    def close(self) -> None:
        """No more puts; consumers get ``None`` once nothing is pending."""
        self._closed = True
        self._ready.set()

    def _pending_count(self) -> int:
        raise NotImplementedError

    async def _wait(self) -> bool:
        """Wait until an item is pending; False when closed and drained."""
        while self._pending_count() == 0:
            if self._closed:
                return False
            self._ready.clear()
            await self._ready.wait()
        return True


class MemoryQueue(_Bounded):
    """Items live in process memory: lost on a crash, counted as dropped at shutdown."""

    durable = False

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self._items: Deque[QueueItem] = collections.deque()
        self._next_id = 0
        self.bytes_in_memory = 0

    def _pending_count(self) -> int:
        return len(self._items)

    async def put(self, payload: bytes) -> None:
        self._reserved -= 1
        self._stored += 1
        self._next_id += 1
        self._items.append(QueueItem(self._next_id, payload))
        self.bytes_in_memory += len(payload)
        self._ready.set()

    async def get(self) -> Optional[QueueItem]:
        if not await self._wait():
            return None
        return self._items.popleft()

    async def ack(self, item: QueueItem) -> None:
        self._stored -= 1
        self.bytes_in_memory -= len(item.payload)

    def pending(self) -> int:
        return len(self._items)


class PersistentQueue(_Bounded):
    """Items live in a SQLite table; only their ids are kept in memory."""

    durable = True
    bytes_in_memory = 0

    def __init__(self, capacity: int, storage: FileStorage, table: str) -> None:
        super().__init__(capacity)
        self.storage = storage
        self.table = table
        self._ids: Deque[int] = collections.deque()

    def open(self) -> int:
        """Load what a previous run left behind; returns how many items will be re-delivered."""
        ids = self.storage.open_table(self.table)
        self._ids.extend(ids)
        self._stored += len(ids)
        if ids:
            self._ready.set()
        return len(ids)

    def _pending_count(self) -> int:
        return len(self._ids)

    def _committed(self, item_id: int) -> None:
        # Runs on the loop as soon as the row is durable, even if the putter was cancelled.
        self._stored += 1
        self._ids.append(item_id)
        self._ready.set()

    async def put(self, payload: bytes) -> None:
        future = self.storage.insert(self.table, payload, self._committed)
        # If our caller is cancelled the write still completes; nobody must trip over its outcome.
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
        try:
            await asyncio.shield(future)
        finally:
            self._reserved -= 1

    async def get(self) -> Optional[QueueItem]:
        while await self._wait():
            item_id = self._ids.popleft()
            try:
                payload = await self.storage.read(self.table, item_id)
            except BaseException:
                self._ids.appendleft(item_id)  # still stored: read it again later
                raise
            if payload is not None:
                return QueueItem(item_id, payload)
            self._stored -= 1  # the row vanished (edited by hand?): nothing to send
        return None

    async def ack(self, item: QueueItem) -> None:
        """Delete a sent item; its slot stays taken until the row is really gone."""
        while True:
            try:
                await self.storage.delete(self.table, item.id)
            except StorageError:
                # A full or failing disk: keep trying (the row would be sent again after a
                # restart otherwise, and its space never freed). Cancellation ends the wait.
                logger.warning("queue %s: cannot delete a sent request yet, retrying", self.table)
                await asyncio.sleep(DELETE_RETRY_SECONDS)
                continue
            self._stored -= 1
            return

    def pending(self) -> int:
        return len(self._ids)


SendingQueue = Union[MemoryQueue, PersistentQueue]
