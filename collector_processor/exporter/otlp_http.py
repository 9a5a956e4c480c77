"""The ``otlp_http`` exporter: ``POST {endpoint}/v1development/profiles`` with aiohttp."""

from __future__ import annotations

import asyncio
import gzip
import re
import ssl
import time
from email.utils import parsedate_to_datetime
from typing import Dict, Optional, Union

import aiohttp
from google.rpc import status_pb2
from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
    ExportProfilesServiceResponse,
)

from collector_processor import __version__, otlp_json
from collector_processor.errors import PermanentError, RetryableError
from collector_processor.exporter.config import OTLPHttpExporterConfig
from collector_processor.exporter.partial import log_partial_success

__all__ = ["OTLPHttpExporter", "parse_retry_after"]

# As the OTLP/HTTP spec and the Collector's otlphttpexporter.
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
MAX_ERROR_BODY_BYTES = 64 * 1024
_DELAY_SECONDS = re.compile(r"[0-9]{1,12}")


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds from a ``Retry-After`` header: delay-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    # ASCII digits only: str.isdigit() also accepts "²", which float() refuses, and a bad
    # header must never turn a retryable answer into a dropped request.
    if _DELAY_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
        return max(when.timestamp() - (time.time() if now is None else now), 0.0)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


def _error_message(body: bytes, content_type: str) -> str:
    """The backend's reason: a google.rpc.Status if it sent one, else the start of the body."""
    if content_type.startswith("application/x-protobuf"):
        status = status_pb2.Status()
        try:
            status.ParseFromString(body)
            if status.message:
                return str(status.message)
        except Exception:
            pass
    return body[:500].decode("utf-8", "replace").strip()


class OTLPHttpExporter:
    def __init__(self, exporter_id: str, config: OTLPHttpExporterConfig) -> None:
        self.id = exporter_id
        self.config = config
        self._session: Optional[aiohttp.ClientSession] = None
        content_type = "application/json" if config.encoding == "json" else "application/x-protobuf"
        self._headers: Dict[str, str] = {
            "User-Agent": f"otelprof-collector/{__version__}",
            **config.headers,
            "Content-Type": content_type,
        }
        if config.compression == "gzip":
            self._headers["Content-Encoding"] = "gzip"

    async def start(self) -> None:
        ssl_option: Union[ssl.SSLContext, bool] = True
        if self.config.url.startswith("https://"):
            ssl_option = self.config.tls.ssl_context()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ssl_option),
            timeout=aiohttp.ClientTimeout(total=None),  # the sending chain applies the timeout
        )

    def _body(self, payload: bytes) -> bytes:
        if self.config.encoding == "json":
            request = ExportProfilesServiceRequest()
            request.ParseFromString(payload)
            payload = otlp_json.dumps(request).encode("utf-8")
        if self.config.compression == "gzip":
            payload = gzip.compress(payload, compresslevel=6)
        return payload

    async def export(self, payload: bytes) -> None:
        assert self._session is not None, "start() first"
        body = self._body(payload)
        try:
            async with self._session.post(
                self.config.url, data=body, headers=self._headers
            ) as resp:
                response_body = await resp.content.read(MAX_ERROR_BODY_BYTES)
                status, retry_after = resp.status, resp.headers.get("Retry-After")
                content_type = resp.headers.get("Content-Type", "")
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            raise RetryableError(f"cannot reach {self.config.url}: {exc!r}") from None
        if 200 <= status < 300:
            self._read_partial_success(response_body, content_type)
            return
        message = f"HTTP {status}: {_error_message(response_body, content_type)}"
        if status in RETRYABLE_STATUS:
            raise RetryableError(message, parse_retry_after(retry_after))
        raise PermanentError(message)

    def _read_partial_success(self, body: bytes, content_type: str) -> None:
        if not body:
            return
        try:
            if content_type.startswith("application/json"):
                from google.protobuf import json_format

                response = ExportProfilesServiceResponse()
                json_format.Parse(body, response, ignore_unknown_fields=True)
            else:
                response = ExportProfilesServiceResponse.FromString(body)
        except Exception:
            return  # accepted either way
        log_partial_success(self.id, response)

    async def shutdown(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
