"""In-memory exporter for tests (ours and users'): keeps every request, can be told to fail."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Iterable, List

from otelprof.export._common import SHUT_DOWN
from otelprof.export.base import SUCCESS, ExportResult

if TYPE_CHECKING:
    from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
        ExportProfilesServiceRequest,
    )


class InMemoryProfileExporter:
    """Records exported requests in a list; thread-safe; waits without sleeping.

    The requests are kept as given (not copied): do not mutate them after export.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._requests: List[ExportProfilesServiceRequest] = []
        self._scripted: List[ExportResult] = []
        self._attempts = 0
        self._shutdown = False

    def export(self, request: ExportProfilesServiceRequest, timeout_seconds: float) -> ExportResult:
        """Record ``request`` (unless a scripted failure is due) and wake waiters."""
        with self._condition:
            if self._shutdown:
                return SHUT_DOWN
            self._attempts += 1
            result = self._scripted.pop(0) if self._scripted else SUCCESS
            if result.ok:
                self._requests.append(request)
            self._condition.notify_all()
            return result

    def set_results(self, results: Iterable[ExportResult]) -> None:
        """Make the next exports return ``results`` in order, then SUCCESS again.

        Only requests whose result is SUCCESS are recorded, as a real server would keep them.
        """
        with self._condition:
            self._scripted = list(results)

    @property
    def attempts(self) -> int:
        """How many times :meth:`export` was called before shutdown, failed attempts included."""
        with self._condition:
            return self._attempts

    def get_finished_requests(self) -> List[ExportProfilesServiceRequest]:
        """A copy of the list of successfully exported requests, oldest first."""
        with self._condition:
            return list(self._requests)

    def clear(self) -> None:
        """Forget recorded requests (the attempt count and scripted results stay)."""
        with self._condition:
            self._requests.clear()

    def wait_for(self, count: int, timeout_seconds: float) -> bool:
        """Block until at least ``count`` requests are recorded; False if the timeout came first."""
        with self._condition:
            return self._condition.wait_for(lambda: len(self._requests) >= count, timeout_seconds)

    def shutdown(self) -> None:
        """Later exports return PERMANENT (recorded requests stay readable). Safe twice."""
        with self._condition:
            self._shutdown = True
            self._condition.notify_all()
