"""A small Flask shop: the service the demo profiles (instrumented by opentelemetry-instrument).

Each endpoint spends its time in a recognisable function, so the profile has a known shape:
``/checkout`` prices a basket (``price_basket``), ``/search`` ranks products
(``rank_products``), ``/report`` is slow because of ``render_report``'s quadratic loop.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import re
import sqlite3
import threading
from typing import Optional

from flask import Flask, jsonify, request

app = Flask(__name__)
_db_lock = threading.Lock()
_db: Optional[sqlite3.Connection] = None
PRODUCTS = [
    {"id": i, "name": f"product {i} {'blue' if i % 3 else 'red'} widget", "price": (i * 37) % 500}
    for i in range(2000)
]


def database() -> sqlite3.Connection:
    """One in-memory database shared by the server's threads, filled at start-up."""
    global _db
    if _db is None:
        connection = sqlite3.connect(":memory:", check_same_thread=False)
        connection.execute("create table product (id integer primary key, name text, price real)")
        connection.executemany(
            "insert into product values (?, ?, ?)",
            [(p["id"], p["name"], p["price"]) for p in PRODUCTS],
        )
        _db = connection
    return _db


_PRICES: dict = {}


def lookup_price(item: int) -> float:
    # Prices are read from the database once, at start-up. A query per item would release the
    # GIL in every call, and an in-process sampler (see docs/how-it-works.md, "GIL-aligned
    # sampling") then tends to charge the hashing below to this line instead.
    if not _PRICES:
        _PRICES.update(database().execute("select id, price from product").fetchall())
    return float(_PRICES.get(item, 0.0))


def price_basket(items: list) -> float:
    total = 0.0
    for item in items:
        price = lookup_price(item)
        # A deliberately heavy "fraud score": hashing dominates the checkout CPU profile.
        digest = str(item).encode()
        for _ in range(2000):
            digest = hashlib.sha256(digest).digest()
        total += price * (1.0 + digest[0] / 2550.0)
    return round(total, 2)


def rank_products(query: str) -> list:
    pattern = re.compile(re.escape(query), re.IGNORECASE)
    scored = [(len(pattern.findall(p["name"])) * 10 - p["price"] / 100, p) for p in PRODUCTS]
    scored.sort(key=lambda pair: pair[0], reverse=True)
    return [p for _, p in scored[:20]]


def render_report(rows: int) -> str:
    lines = []
    for i in range(rows):
        # Quadratic on purpose: this is the function that makes /report slow.
        cells = ",".join(str((i * j) % 97) for j in range(rows))
        lines.append(cells)
    return "\n".join(lines)


@app.route("/checkout", methods=["POST"])
def checkout():
    items = (request.get_json(silent=True) or {}).get("items", [])
    return jsonify(total=price_basket(items), items=len(items))


@app.route("/search")
def search():
    return jsonify(results=rank_products(request.args.get("q", "widget")))


@app.route("/report")
def report():
    rows = int(request.args.get("rows", "250"))
    return app.response_class(render_report(rows), mimetype="text/csv")


@app.route("/health")
def health():
    return "ok"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    random.seed(1)
    json.dumps(PRODUCTS[:1])
    with _db_lock:
        database()
    # One log line per request would dominate the profile of a toy service; keep errors only.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # Flask's threaded development server is enough for a demo on loopback.
    app.run(host="127.0.0.1", port=args.port, threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()
