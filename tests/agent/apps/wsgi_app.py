"""A tiny WSGI app for the gunicorn pre-fork test."""

import os

import otelprof


def _ticks() -> int:
    profiler = otelprof.get_profiler()
    return profiler.sampler._interval.ticks if profiler is not None else 0


def handle_request() -> bytes:
    # Compute until the worker's sampler has ticked a few times in here (at least one round),
    # so the worker's cpu profile must show this function whatever the machine's speed.
    start = _ticks()
    total = sum(i * i for i in range(50000))
    while _ticks() < start + 3:
        total += sum(i * i for i in range(50000))
    return str(total).encode()


def app(environ, start_response):
    body = handle_request() + f" pid={os.getpid()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
