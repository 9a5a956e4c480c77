"""gRPC and ``os.fork``: a fork waits briefly for our call in flight; a child forked during one
never touches gRPC.

gRPC's core cannot be forked while a thread is inside a call ("Other threads are currently
calling into gRPC, skipping fork() handlers"): the child inherits its pollers and locks
mid-operation, and using gRPC there may crash it. Measured with our exporter exporting in a
loop while the main thread forked 150 children that each exported once: 2 children died of
SIGSEGV. So every call of ours holds a process-wide gate; ``os.fork`` takes the gate first
(waiting up to :data:`FORK_WAIT_SECONDS` for the call to end), and a child forked while a call
was still running is marked :attr:`ForkGuard.unsafe`: its exports are refused instead.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

from otelprof import _unpatched

FORK_WAIT_SECONDS = 1.0
"""How long ``os.fork`` may wait for an export in flight (a healthy one takes milliseconds; on a
loaded machine, a fork storm's own children slow it down to a few hundred)."""


class ForkGuard:
    """The gate every gRPC call of the agent passes, and the at-fork hooks around it."""

    def __init__(self) -> None:
        self._gate = _unpatched.allocate_lock()
        self._held_for_fork = False
        # A fork already gave up on the call in flight (a hung collector): don't make every
        # further fork wait for the same call.
        self._stuck = False
        self.unsafe = False
        """This process was forked while a call was in flight: gRPC must not be used here."""

    @contextlib.contextmanager
    def call(self) -> Iterator[None]:
        """Hold the gate for one call (channel creation, the RPC, closing)."""
        with self._gate:
            try:
                yield
            finally:
                self._stuck = False

    def before_fork(self) -> None:
        if self._stuck:
            self._held_for_fork = self._gate.acquire(blocking=False)
        else:
            self._held_for_fork = self._gate.acquire(timeout=FORK_WAIT_SECONDS)
        self._stuck = not self._held_for_fork

    def after_fork_in_parent(self) -> None:
        if self._held_for_fork:
            self._held_for_fork = False
            self._gate.release()

    def after_fork_in_child(self) -> None:
        if not self._held_for_fork:
            self.unsafe = True  # and it stays so in this process's own children
        # The inherited one may be held by a thread gone here.
        self._gate = _unpatched.allocate_lock()
        self._held_for_fork = False
        self._stuck = False


GUARD = ForkGuard()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=GUARD.before_fork,
        after_in_parent=GUARD.after_fork_in_parent,
        after_in_child=GUARD.after_fork_in_child,
    )
