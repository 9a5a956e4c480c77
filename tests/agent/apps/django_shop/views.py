"""Two views: ``order_total`` spends CPU in ``crunch_order_totals``, ``health`` returns at once.

``order_total`` reaches ``crunch_order_totals`` through ``order_id`` nested calls of
``walk_order_lines``, so every sample taken in the slow function tells, by its stack alone,
which request it came from (``/orders/3/``: three ``walk_order_lines`` frames). The test uses
that to check each sample's link against the server span of that very request.
"""

from __future__ import annotations

import hashlib
from typing import Any, Optional, Tuple

from django.http import HttpRequest, HttpResponse, JsonResponse

import otelprof

FALLBACK_ROUNDS = 200_000  # without a running profiler: a fixed amount of work
ROUNDS_PER_CHECK = 2_000


def _sampler_position() -> Optional[Tuple[Any, int]]:
    """The sampler's current interval and tick count (both change as it ticks and exports)."""
    profiler = otelprof.get_profiler()
    if profiler is None:
        return None
    interval = profiler.sampler._interval
    return interval, interval.ticks


def crunch_order_totals() -> str:
    """The hot spot: hashes until the sampler has ticked three times in here.

    Deterministic on any machine: each request is sampled in this function at least twice, so
    its server span gets this function in ``otelprof.hot_functions`` however busy the CPUs are.
    """
    digest = b""
    last = _sampler_position()
    if last is None:
        for position in range(FALLBACK_ROUNDS):
            digest = hashlib.sha256(digest + str(position).encode()).digest()
        return digest.hex()
    ticks_seen = 0
    while ticks_seen < 3:
        for position in range(ROUNDS_PER_CHECK):
            digest = hashlib.sha256(digest + str(position).encode()).digest()
        now = _sampler_position()
        if now is not None and (now[0] is not last[0] or now[1] != last[1]):
            ticks_seen += 1
            last = now
    return digest.hex()


def walk_order_lines(depth: int) -> str:
    if depth > 1:
        return walk_order_lines(depth - 1)
    return crunch_order_totals()


def order_total(request: HttpRequest, order_id: int) -> JsonResponse:
    return JsonResponse({"order": order_id, "checksum": walk_order_lines(order_id)})


def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")
