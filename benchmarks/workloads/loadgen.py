"""Load generator for the web workload: a fixed number of requests from a few clients, stdlib only.

By default each client sends its next request as soon as the last one is answered (closed loop:
the service is saturated). ``--rate R`` paces them instead (open loop): request ``k`` of the run
is due ``k / R`` seconds after the start, whenever the previous ones finish, which is how
traffic reaches a production service that has headroom; a client that falls behind sends at
once, so the run still ends with every request served.

Runs as its own process (``python -I -S``) so its CPU is not the profiled service's, and no
profiler started through the environment or site hooks can follow it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from typing import Callable, List, Optional


class _Schedule:
    """When each request of an open-loop run is due (request ``k`` at ``start + k / rate``)."""

    def __init__(
        self,
        rate: float,
        clients: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.clients = clients
        self._clock = clock
        self._sleep = sleep
        self.start = clock()

    def wait_for(self, k: int) -> None:
        delay = self.start + k / self.rate - self._clock()
        if delay > 0:
            self._sleep(delay)  # pacing the load itself, not synchronising with anything


def _worker(
    port: int, count: int, offset: int, errors: List[str], schedule: Optional[_Schedule]
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = json.dumps(
        {"customer": "bench", "lines": [{"sku": f"sku-{i}", "qty": i % 5 + 1} for i in range(12)]}
    )
    for i in range(count):
        if schedule is not None:
            schedule.wait_for(i * schedule.clients + offset)
        kind = (i + offset) % 4
        if kind == 0:
            conn.request("GET", f"/items?limit={20 + i % 30}")
        elif kind == 1:
            conn.request("GET", f"/page?category={i % 7}")
        elif kind == 2:
            conn.request("POST", "/orders", body, {"Content-Type": "application/json"})
        else:
            conn.request("GET", f"/items/{1 + i % 500}")
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            errors.append(f"HTTP {response.status}")
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--rate", type=float, default=0.0, help="requests per second over all clients; 0: no pacing"
    )
    args = parser.parse_args()
    if args.rate < 0:
        parser.error(f"--rate must be 0 (no pacing) or a positive number, not {args.rate}")
    errors: List[str] = []
    per_worker = args.requests // args.concurrency
    schedule = _Schedule(args.rate, args.concurrency) if args.rate > 0 else None
    threads = [
        threading.Thread(target=_worker, args=(args.port, per_worker, n, errors, schedule))
        for n in range(args.concurrency)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        sys.exit(f"loadgen: {len(errors)} failed requests, first: {errors[0]}")
    print(per_worker * args.concurrency)


if __name__ == "__main__":
    main()
