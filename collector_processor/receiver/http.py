"""OTLP/HTTP: ``POST /v1development/profiles``, protobuf or JSON, optionally gzip, on aiohttp."""

from __future__ import annotations

import logging
import math
from typing import Optional

from aiohttp import web
from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2

from collector_processor import otlp_json
from collector_processor.auth import BearerTokenAuth
from collector_processor.errors import InvalidRequestError, describe_exception
from collector_processor.httpserve import listen_error
from collector_processor.receiver.config import HttpServerConfig, split_endpoint
from collector_processor.receiver.gunzip import BodyTooLarge, gunzip_limited
from collector_processor.receiver.ingest import Ingest, Outcome, Result

__all__ = ["BodyTooLarge", "HttpReceiverServer", "gunzip_limited"]

logger = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
GRACE_SECONDS = 5.0  # requests in flight at shutdown get this long to finish
HTTP_STATUS = {
    Outcome.INVALID: (400, code_pb2.INVALID_ARGUMENT),
    Outcome.REFUSED: (503, code_pb2.UNAVAILABLE),
    Outcome.UNAUTHENTICATED: (401, code_pb2.UNAUTHENTICATED),
    Outcome.TOO_LARGE: (413, code_pb2.RESOURCE_EXHAUSTED),
    Outcome.UNSUPPORTED: (415, code_pb2.INVALID_ARGUMENT),
}


class _WithoutContent(logging.Filter):
    """aiohttp logs a malformed request with a traceback quoting the offending bytes (a header
    line, say): keep the event, at INFO (it is the client's mistake), without the quote."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg = "refused a malformed HTTP request from %s (%s)"
            record.args = (remote, describe_exception(record.exc_info[1]))
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


# The logger aiohttp's request handlers use for this receiver.
SERVER_LOGGER = logging.getLogger(f"{__name__}.server")
SERVER_LOGGER.addFilter(_WithoutContent())


def _response(result: Result, content_type: str) -> web.Response:
    if result.outcome is Outcome.OK:
        # An empty ExportProfilesServiceResponse means full success.
        body = b"{}" if content_type == JSON else b""
        return web.Response(status=200, body=body, content_type=content_type)
    http_status, grpc_code = HTTP_STATUS[result.outcome]
    status = status_pb2.Status(code=grpc_code, message=result.message)
    if content_type == JSON:
        body = json_format.MessageToJson(status, indent=None).encode("utf-8")
    else:
        body = status.SerializeToString()
    headers = {}
    if result.outcome is Outcome.REFUSED:
        headers["Retry-After"] = str(max(math.ceil(result.retry_after_seconds), 1))
    return web.Response(status=http_status, body=body, content_type=content_type, headers=headers)


class HttpReceiverServer:
    def __init__(
        self,
        receiver_id: str,
        config: HttpServerConfig,
        ingest: Ingest,
        auth: Optional[BearerTokenAuth],
    ) -> None:
        self.receiver_id = receiver_id
        self.config = config
        self.ingest = ingest
        self.auth = auth
        self._runner: Optional[web.AppRunner] = None
        self.port: Optional[int] = None

    async def start(self) -> None:
        app = web.Application(client_max_size=self.config.max_request_body_size)
        app.router.add_post(self.config.profiles_url_path, self._handle)
        # We decompress ourselves: bounded output, and a bad stream gets a 400, not a dropped
        # connection.
        self._runner = web.AppRunner(
            app,
            auto_decompress=False,
            access_log=None,
            shutdown_timeout=GRACE_SECONDS,
            logger=SERVER_LOGGER,
        )
        await self._runner.setup()
        key = f"receivers::{self.receiver_id}::protocols::http::endpoint"
        host, port = split_endpoint(self.config.endpoint, key)
        ssl_context = self.config.tls.ssl_context() if self.config.tls else None
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context)
        try:
            await site.start()
        except OSError as exc:
            raise listen_error(key, self.config.endpoint, exc) from None
        addresses = self._runner.addresses
        self.port = int(addresses[0][1]) if addresses else port
        logger.info(
            "receiver %s: OTLP/HTTP listening on %s:%d%s%s",
            self.receiver_id,
            host,
            self.port,
            self.config.profiles_url_path,
            " (TLS)" if ssl_context else "",
        )

    async def _handle(self, request: web.Request) -> web.Response:
        media_type = request.content_type
        reply_type = JSON if media_type == JSON else PROTOBUF
        if self.auth is not None and not self.auth.authenticate(
            request.headers.get("Authorization")
        ):
            result = Result(Outcome.UNAUTHENTICATED, "missing or invalid bearer token")
            return _response(self.ingest.refuse(result), reply_type)
        if media_type not in (PROTOBUF, JSON):
            # Header values are not echoed: nothing a client sends is repeated back or logged.
            message = f"unsupported Content-Type (use {PROTOBUF} or {JSON})"
            return _response(self.ingest.refuse(Result(Outcome.UNSUPPORTED, message)), reply_type)
        refusal = self.ingest.admit()  # before reading the body: refusing must stay cheap
        if refusal is not None:
            return _response(refusal, reply_type)
        limit = self.config.max_request_body_size
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            message = f"request body exceeds max_request_body_size ({limit} bytes)"
            return _response(self.ingest.refuse(Result(Outcome.TOO_LARGE, message)), reply_type)
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        try:
            if encoding == "gzip":
                body = gunzip_limited(body, limit)
            elif encoding not in ("identity", ""):
                raise InvalidRequestError("unsupported Content-Encoding (use gzip or identity)")
            decoded = otlp_json.loads(body) if media_type == JSON else None
        except BodyTooLarge as exc:
            return _response(self.ingest.refuse(Result(Outcome.TOO_LARGE, str(exc))), reply_type)
        except InvalidRequestError as exc:
            return _response(self.ingest.invalid(str(exc)), reply_type)
        if decoded is None:
            return _response(await self.ingest.accept_protobuf(body), reply_type)
        return _response(await self.ingest.accept(decoded), reply_type)

    async def stop(self, grace_seconds: float) -> None:
        # aiohttp fixes the grace period when the runner is made (GRACE_SECONDS).
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
