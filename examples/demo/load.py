"""Load generator for the demo shop: a few client threads for a fixed time, on loopback."""

from __future__ import annotations

import random
import threading
from collections import Counter
from typing import Dict

import requests


def _client(base: str, stop: threading.Event, counts: Counter, seed: int) -> None:
    rng = random.Random(seed)
    session = requests.Session()
    while not stop.is_set():
        roll = rng.random()
        try:
            if roll < 0.5:
                items = [rng.randrange(2000) for _ in range(rng.randint(1, 8))]
                session.post(f"{base}/checkout", json={"items": items}, timeout=30)
                counts["POST /checkout"] += 1
            elif roll < 0.9:
                query = rng.choice(["blue", "red", "widget"])
                session.get(f"{base}/search", params={"q": query}, timeout=30)
                counts["GET /search"] += 1
            else:
                session.get(f"{base}/report", params={"rows": 250}, timeout=30)
                counts["GET /report"] += 1
        except requests.RequestException:
            counts["errors"] += 1


def generate_load(base: str, seconds: float, clients: int = 4) -> Dict[str, int]:
    """Hit the shop from ``clients`` threads for ``seconds``; return requests per endpoint."""
    stop = threading.Event()
    counts: Counter = Counter()
    threads = [
        threading.Thread(target=_client, args=(base, stop, counts, seed), daemon=True)
        for seed in range(clients)
    ]
    for thread in threads:
        thread.start()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join(60)
    return dict(counts)


if __name__ == "__main__":
    import sys

    print(generate_load(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 10.0))
