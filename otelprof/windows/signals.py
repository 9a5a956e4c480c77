"""The user-chosen signal that opens windows: its handler only sets a flag the runner polls."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Optional

from otelprof.config import parse_signal

_logger = logging.getLogger("otelprof")

POLL_SECONDS = 0.5
"""How often the runner looks at the flag while a handler is installed.

A signal handler runs in the main thread between two bytecodes, possibly while that thread holds
a lock the runner's wake-up event uses; so the handler touches no lock and no event, it only
sets an attribute, and the runner polls it.
"""


class WindowSignal:
    """Installs the handler (only over the default action) and hands over received signals."""

    def __init__(self) -> None:
        self.number: Optional[int] = None
        self._pending = False

    @property
    def installed(self) -> bool:
        return self.number is not None

    def install(self, name: str) -> bool:
        try:
            number = parse_signal(name)
        except ValueError as error:
            _logger.warning("otelprof: window signal not installed: %s", error)
            return False
        if threading.current_thread() is not threading.main_thread():
            _logger.warning(
                "otelprof: window signal %s not installed: the profiler started outside the main"
                " thread, and only the main thread can install signal handlers",
                name,
            )
            return False
        current = signal.getsignal(number)
        if current is not signal.SIG_DFL:
            _logger.info(
                "otelprof: window signal %s not installed: the application handles it already",
                name,
            )
            return False
        signal.signal(number, self._handler)
        self.number = number
        _logger.info(
            "otelprof: send %s to this process to open a precise and a memory window", name
        )
        return True

    def _handler(self, signum: int, frame: Optional[FrameType]) -> None:
        self._pending = True

    def consume(self) -> bool:
        """True once per received signal burst (read and reset by the runner)."""
        if not self._pending:
            return False
        self._pending = False
        return True

    def uninstall(self) -> None:
        number, self.number = self.number, None
        if number is None or threading.current_thread() is not threading.main_thread():
            return
        try:
            if signal.getsignal(number) == self._handler:
                signal.signal(number, signal.SIG_DFL)
        except (ValueError, OSError):
            pass
