"""Error classes that decide what a receiver answers and whether an exporter retries."""

from __future__ import annotations

import traceback
from typing import Optional

__all__ = [
    "InvalidRequestError",
    "PermanentError",
    "RefusedError",
    "RetryableError",
    "ShutdownError",
    "describe_exception",
]


class InvalidRequestError(ValueError):
    """The request itself is malformed: INVALID_ARGUMENT / HTTP 400, never retried."""


class RefusedError(Exception):
    """The service is over a budget (memory, queue): UNAVAILABLE / HTTP 503, retry later."""

    def __init__(self, message: str, retry_after_seconds: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class PermanentError(Exception):
    """An export failure that retrying cannot fix (bad request, auth, unknown method)."""


class RetryableError(Exception):
    """An export failure worth retrying; the backend may ask for a minimum delay."""

    def __init__(self, message: str, delay_seconds: Optional[float] = None) -> None:
        super().__init__(message)
        self.delay_seconds = delay_seconds


class ShutdownError(Exception):
    """The service stopped before the request could be sent; it stays queued if durable."""


def describe_exception(exc: BaseException) -> str:
    """``TypeName at file.py:123 in function``: where a bug struck, without its message.

    Exception messages can quote the data being handled (a ``KeyError`` holds the missing
    key), and request contents must never reach the logs.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    last = frames[-1]
    filename = last.filename.rsplit("/", 2)
    return f"{type(exc).__name__} at {'/'.join(filename[-2:])}:{last.lineno} in {last.name}"
