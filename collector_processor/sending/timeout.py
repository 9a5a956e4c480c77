"""Per-attempt timeout: an attempt that overruns becomes a retryable failure."""

from __future__ import annotations

import asyncio
from typing import Awaitable, TypeVar

from collector_processor.errors import RetryableError

__all__ = ["with_timeout"]

T = TypeVar("T")


async def with_timeout(attempt: Awaitable[T], timeout_seconds: float) -> T:
    try:
        return await asyncio.wait_for(attempt, timeout_seconds)
    except asyncio.TimeoutError as exc:
        raise RetryableError(f"attempt timed out after {timeout_seconds:g}s") from exc
