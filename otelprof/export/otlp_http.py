"""OTLP/HTTP profile exporter: POST protobuf to ``/v1development/profiles``, outcome classified."""

from __future__ import annotations

import gzip
import time
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Callable, Dict, Optional, Tuple, Union

import requests

from otelprof import _unpatched
from otelprof._threads import AGENT_THREAD_IDENTS
from otelprof.export._common import (
    SHUT_DOWN,
    USER_AGENT,
    TLSFileError,
    check_tls_files,
    response_result,
    truncate,
)
from otelprof.export.base import ExportResult, ExportStatus

if TYPE_CHECKING:
    from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
        ExportProfilesServiceRequest,
        ExportProfilesServiceResponse,
    )

    from otelprof.config import ExporterConfig

# As the OTLP/HTTP spec and the Collector's otlphttpexporter: only these are worth retrying.
RETRYABLE_STATUS_CODES = frozenset({429, 502, 503, 504})
PROTOBUF = "application/x-protobuf"


class OTLPHttpProfileExporter:
    """POSTs each request to the full profiles URL in ``ExporterConfig.endpoint``.

    Uses one ``requests.Session`` (connection reuse), created at the first export. TLS follows
    the URL's scheme: ``certificate_file`` is the CA bundle to verify the server with, and
    ``client_certificate_file``/``client_key_file`` authenticate us. ``insecure`` is a gRPC-only
    setting in the OTLP spec and is ignored here. After ``os.fork`` the child must call
    :meth:`reset_after_fork`, so it does not share the parent's pooled connections.
    """

    def __init__(
        self,
        config: ExporterConfig,
        session_factory: Callable[[], requests.Session] = requests.Session,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = config.endpoint
        self._config = config
        self._gzip = config.compression == "gzip"
        self._headers: Dict[str, str] = {"User-Agent": USER_AGENT, **config.headers}
        self._headers["Content-Type"] = PROTOBUF
        if self._gzip:
            self._headers["Content-Encoding"] = "gzip"
        # Passed with every request: a Session's own ``verify`` loses to REQUESTS_CA_BUNDLE /
        # CURL_CA_BUNDLE in the environment (requests merges those in per request).
        self._verify: Union[bool, str] = config.certificate_file or True
        self._cert: Union[str, Tuple[str, str], None] = config.client_certificate_file
        if config.client_certificate_file and config.client_key_file:
            self._cert = (config.client_certificate_file, config.client_key_file)
        self._session_factory = session_factory
        self._wall_clock = wall_clock  # only to turn an HTTP-date Retry-After into seconds
        self._lock = _unpatched.allocate_lock()
        self._session: Optional[requests.Session] = None
        self._shutdown = False

    @property
    def url(self) -> str:
        """Where requests are POSTed."""
        return self._url

    def export(self, request: ExportProfilesServiceRequest, timeout_seconds: float) -> ExportResult:
        """Send one request within ``timeout_seconds``; classify the outcome, never raise."""
        try:
            session = self._get_session()
        except TLSFileError as error:
            return ExportResult(ExportStatus.PERMANENT, f"HTTP export to {self._url}: {error}")
        if session is None:
            return SHUT_DOWN
        if _unpatched.get_ident() in AGENT_THREAD_IDENTS:  # never the application's own hub
            _unpatched.blocking_name_resolution()
        try:
            body = request.SerializeToString()
            if self._gzip:
                body = gzip.compress(body)
            response = session.post(
                self._url,
                data=body,
                headers=self._headers,
                timeout=max(timeout_seconds, 0.001),
                verify=self._verify,
                cert=self._cert,
            )
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,  # the answer was cut off
        ) as error:
            # Refused, reset, TLS handshake failures and timeouts: the server may be back soon.
            return ExportResult(
                ExportStatus.RETRYABLE,
                f"HTTP export to {self._url} failed: {_describe(error)}",
            )
        except Exception as error:  # bad URL, unserializable request, closed session...
            return ExportResult(
                ExportStatus.PERMANENT, f"HTTP export to {self._url} failed: {_describe(error)}"
            )
        return self._classify(response)

    def _get_session(self) -> Optional[requests.Session]:
        with self._lock:
            if self._shutdown:
                return None
            if self._session is None:
                self._session = self._create_session()
            return self._session

    def _create_session(self) -> requests.Session:
        config = self._config
        # Check them now so a wrong path or a broken file is a PERMANENT result naming it;
        # requests would report an OSError or a (retryable-looking) SSLError at send time.
        check_tls_files(
            config.certificate_file, config.client_certificate_file, config.client_key_file
        )
        return self._session_factory()

    def _classify(self, response: requests.Response) -> ExportResult:
        code = response.status_code
        if 200 <= code < 300:
            return response_result(_parse_response(response))
        reason = _error_text(response)
        message = f"HTTP export to {self._url} failed: {code} {response.reason or ''}".rstrip()
        if reason:
            message += f": {reason}"
        if code in RETRYABLE_STATUS_CODES:
            delay = retry_after_seconds(response.headers.get("Retry-After"), self._wall_clock)
            return ExportResult(ExportStatus.RETRYABLE, message, delay)
        return ExportResult(ExportStatus.PERMANENT, message)

    def reset_after_fork(self) -> None:
        """Forget the parent's session and its pooled connections (without closing them)."""
        self._lock = _unpatched.allocate_lock()
        self._session = None

    def shutdown(self) -> None:
        """Close pooled connections; later exports return PERMANENT. Safe to call twice."""
        with self._lock:
            self._shutdown = True
            session, self._session = self._session, None
        if session is not None:
            session.close()


def retry_after_seconds(
    value: Optional[str], wall_clock: Callable[[], float] = time.time
) -> Optional[float]:
    """Parse ``Retry-After`` (delta-seconds or an HTTP-date) into seconds; None if unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(int(value)), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP-dates are GMT; a zone-less one is malformed, read as GMT
        from datetime import timezone

        when = when.replace(tzinfo=timezone.utc)
    return max(when.timestamp() - wall_clock(), 0.0)


def _parse_response(response: requests.Response) -> Optional[ExportProfilesServiceResponse]:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.profiles.v1development import profiles_service_pb2

    if not response.content or PROTOBUF not in response.headers.get("Content-Type", ""):
        return None  # accepted; a JSON or empty body carries nothing we act on
    try:
        parsed: ExportProfilesServiceResponse = (
            profiles_service_pb2.ExportProfilesServiceResponse.FromString(response.content)
        )
    except DecodeError:
        return None
    return parsed


def _error_text(response: requests.Response) -> str:
    """The server's reason: the message of a protobuf ``google.rpc.Status``, else the text."""
    if not response.content:
        return ""
    if PROTOBUF in response.headers.get("Content-Type", ""):
        from google.protobuf.message import DecodeError
        from google.rpc import status_pb2

        try:
            return truncate(status_pb2.Status.FromString(response.content).message)
        except DecodeError:
            return ""
    return truncate(response.text)


def _describe(error: BaseException) -> str:
    """Name the failure class first: ``ConnectTimeout``/``SSLError`` say more than the text."""
    return f"{type(error).__name__}: {truncate(str(error))}"
