"""``service: telemetry: metrics: address``: the self-metrics at ``GET /metrics``."""

from __future__ import annotations

import logging
from typing import Optional

from aiohttp import web

from collector_processor.httpserve import serve
from collector_processor.telemetry import Metrics

__all__ = ["MetricsServer"]

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class MetricsServer:
    def __init__(self, address: str, metrics: Metrics) -> None:
        self.address = address
        self.metrics = metrics
        self.port: Optional[int] = None
        self._runner: Optional[web.AppRunner] = None

    async def _handle(self, request: web.Request) -> web.Response:
        response = web.Response(body=self.metrics.render().encode("utf-8"))
        response.headers["Content-Type"] = CONTENT_TYPE
        return response

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._handle)
        key = "service::telemetry::metrics::address"
        self._runner, self.port = await serve(app, self.address, key)
        logger.info("self-metrics: listening on port %d/metrics", self.port)

    async def shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
