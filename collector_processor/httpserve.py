"""Starting a small aiohttp application on a ``host:port`` endpoint (health, metrics)."""

from __future__ import annotations

from typing import Tuple

from aiohttp import web

from collector_processor.receiver.config import split_endpoint

__all__ = ["listen_error", "serve"]


def listen_error(key: str, address: str, exc: OSError) -> OSError:
    """The start failure of a listener, naming the config key it came from: several
    components listen, and "[Errno 98] address already in use" alone does not say which."""
    return OSError(f"{key}: cannot listen on {address}: {exc.strerror or exc}")


async def serve(app: web.Application, endpoint: str, key: str) -> Tuple[web.AppRunner, int]:
    """Bind ``app`` to ``endpoint`` (configured at ``key``); return its runner (to clean up)
    and the bound port."""
    host, port = split_endpoint(endpoint, key)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise listen_error(key, endpoint, exc) from None
    addresses = runner.addresses
    return runner, int(addresses[0][1]) if addresses else port
