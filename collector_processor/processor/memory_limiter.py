"""The ``memory_limiter`` processor: refuse data (retryable) instead of growing past a budget.

Every ``check_interval`` it reads the process's resident memory. Above the soft limit
(``limit - spike_limit``) requests are refused with UNAVAILABLE / 503 until usage drops; above
the hard limit it also runs a garbage collection. ``queue_limit_mib`` (an otelprof addition)
refuses while the in-memory sending queues hold more than that many MiB of requests.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from pathlib import Path
from typing import Callable, Optional

from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)

from collector_processor.errors import RefusedError
from collector_processor.processor.config import MemoryLimiterConfig

__all__ = ["MemoryLimiter", "read_rss_bytes", "read_total_memory_bytes"]

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
CGROUP_LIMIT_FILES = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def read_rss_bytes() -> int:
    """Current resident set size (Linux ``/proc/self/statm``)."""
    fields = Path("/proc/self/statm").read_text(encoding="ascii").split()
    return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")


def read_total_memory_bytes() -> int:
    """The container's memory limit if there is one, else the machine's memory."""
    for name in CGROUP_LIMIT_FILES:
        try:
            text = Path(name).read_text(encoding="ascii").strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:  # "max" or a huge number mean no limit
            return int(text)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


class MemoryLimiter:
    def __init__(
        self,
        processor_id: str,
        config: MemoryLimiterConfig,
        *,
        queue_bytes: Callable[[], int] = lambda: 0,
        read_rss: Callable[[], int] = read_rss_bytes,
        total_memory: Callable[[], int] = read_total_memory_bytes,
    ) -> None:
        self.id = processor_id
        self.config = config
        self._queue_bytes = queue_bytes
        self._read_rss = read_rss
        if config.limit_mib:
            self.hard_limit_bytes = config.limit_mib * MIB
            spike = config.spike_limit_mib * MIB or self.hard_limit_bytes // 5
        else:
            total = total_memory()
            self.hard_limit_bytes = total * config.limit_percentage // 100
            spike = total * config.spike_limit_percentage // 100 or self.hard_limit_bytes // 5
        self.soft_limit_bytes = self.hard_limit_bytes - spike
        self.queue_limit_bytes = config.queue_limit_mib * MIB
        self.usage_bytes = 0
        self._refusing = False
        self._task: Optional[asyncio.Task[None]] = None

    async def start(self) -> None:
        self.check()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"otelprof-{self.id}")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.config.check_interval_seconds)
            try:
                self.check()
            except Exception:  # reading /proc failed: keep the last verdict, say so once per check
                logger.exception("%s: cannot read memory usage", self.id)

    def check(self) -> None:
        """Read memory usage and decide whether to refuse until the next check."""
        usage = self._read_rss()
        if usage > self.hard_limit_bytes:
            gc.collect()
            usage = self._read_rss()
        refusing = usage > self.soft_limit_bytes
        if refusing != self._refusing:
            logger.warning(
                "%s: memory usage %d MiB is %s the soft limit %d MiB: %s data",
                self.id,
                usage // MIB,
                "above" if refusing else "back below",
                self.soft_limit_bytes // MIB,
                "refusing" if refusing else "accepting",
            )
        self._refusing = refusing
        self.usage_bytes = usage

    def admission_error(self) -> Optional[RefusedError]:
        """The refusal due now, if any: cheap, so receivers ask before decoding a request."""
        if self._refusing:
            return RefusedError(
                f"memory usage {self.usage_bytes // MIB} MiB is above the soft limit "
                f"{self.soft_limit_bytes // MIB} MiB"
            )
        if self.queue_limit_bytes and self._queue_bytes() > self.queue_limit_bytes:
            limit_mib = self.queue_limit_bytes // MIB
            return RefusedError(f"sending queues hold more than queue_limit_mib ({limit_mib} MiB)")
        return None

    def process(self, request: ExportProfilesServiceRequest) -> None:
        error = self.admission_error()
        if error is not None:
            raise error

    async def shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
