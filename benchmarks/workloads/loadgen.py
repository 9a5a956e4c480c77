"""Load generator for the web workload: a fixed number of requests from a few clients, stdlib only.

Runs as its own process (``python -I -S``) so its CPU is not the profiled service's, and no
profiler started through the environment or site hooks can follow it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
from typing import List


def _worker(port: int, count: int, offset: int, errors: List[str]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = json.dumps(
        {"customer": "bench", "lines": [{"sku": f"sku-{i}", "qty": i % 5 + 1} for i in range(12)]}
    )
    for i in range(count):
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
    args = parser.parse_args()
    errors: List[str] = []
    per_worker = args.requests // args.concurrency
    threads = [
        threading.Thread(target=_worker, args=(args.port, per_worker, n, errors))
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
