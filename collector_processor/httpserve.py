"""Starting a small aiohttp application on a ``host:port`` endpoint (health, metrics)."""

from __future__ import annotations

from typing import Tuple

from aiohttp import web

from collector_processor.receiver.config import split_endpoint

__all__ = ["serve"]


async def serve(app: web.Application, endpoint: str) -> Tuple[web.AppRunner, int]:
    """Bind ``app``; return its runner (to clean up) and the bound port."""
    host, port = split_endpoint(endpoint, "endpoint")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError:
        await runner.cleanup()
        raise
    addresses = runner.addresses
    return runner, int(addresses[0][1]) if addresses else port
