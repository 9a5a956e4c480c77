"""A tiny WSGI app for the gunicorn pre-fork test."""

import os


def handle_request() -> bytes:
    return str(sum(i * i for i in range(50000))).encode()


def app(environ, start_response):
    body = handle_request() + f" pid={os.getpid()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
