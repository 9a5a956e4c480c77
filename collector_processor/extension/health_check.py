"""The ``health_check`` extension: ``GET /`` answers 200 while the pipelines run, else 503."""

from __future__ import annotations

import datetime
import logging
import time
from typing import Optional

from aiohttp import web

from collector_processor.extension.config import HealthCheckConfig
from collector_processor.httpserve import serve

__all__ = ["HealthCheck"]

logger = logging.getLogger(__name__)


class HealthCheck:
    """Same body as the Collector's extension: ``{"status": "Server available", ...}``."""

    def __init__(self, name: str, config: HealthCheckConfig) -> None:
        self.name = name
        self.config = config
        self.ready = False
        self.port: Optional[int] = None
        self._runner: Optional[web.AppRunner] = None
        self._up_since: Optional[datetime.datetime] = None
        self._up_monotonic = 0.0

    def set_ready(self, ready: bool) -> None:
        if ready and not self.ready:
            self._up_since = datetime.datetime.now(datetime.timezone.utc)
            self._up_monotonic = time.monotonic()
        self.ready = ready

    async def _handle(self, request: web.Request) -> web.Response:
        if not self.ready or self._up_since is None:
            return web.json_response({"status": "Server not available"}, status=503)
        return web.json_response(
            {
                "status": "Server available",
                "upSince": self._up_since.isoformat(),
                "uptime": f"{time.monotonic() - self._up_monotonic:.3f}s",
            }
        )

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(self.config.path, self._handle)
        key = f"extensions::{self.name}::endpoint"
        self._runner, self.port = await serve(app, self.config.endpoint, key)
        logger.info(
            "health_check %s: listening on port %d%s", self.name, self.port, self.config.path
        )

    async def shutdown(self) -> None:
        self.ready = False
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
