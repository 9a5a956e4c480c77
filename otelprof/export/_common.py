"""Pieces both OTLP exporters share: the user agent, TLS file reading and partial successes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

from otelprof.export.base import ExportResult, ExportStatus
from otelprof.version import __version__

if TYPE_CHECKING:
    from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
        ExportProfilesServiceResponse,
    )


USER_AGENT = f"otelprof/{__version__}"

SHUT_DOWN = ExportResult(ExportStatus.PERMANENT, "exporter is shut down")


class TLSFileError(Exception):
    """A configured certificate or key file cannot be read; the message names the file."""


def read_tls_file(what: str, path: Optional[str]) -> Optional[bytes]:
    """Read a PEM file named in the configuration, or raise :class:`TLSFileError` saying which."""
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise TLSFileError(f"cannot read {what} {path!r}: {error.strerror or error}") from error


def check_tls_files(
    certificate_file: Optional[str],
    client_certificate_file: Optional[str],
    client_key_file: Optional[str],
) -> None:
    """Raise :class:`TLSFileError` if a configured PEM file is unreadable or not usable.

    Both transports would otherwise report a bad file only as a failed handshake, which looks
    retryable; a file that does not parse will not parse on the next attempt either.
    """
    import ssl

    for what, path in (
        ("certificate file", certificate_file),
        ("client certificate file", client_certificate_file),
        ("client key file", client_key_file),
    ):
        read_tls_file(what, path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if certificate_file:
        try:
            context.load_verify_locations(cafile=certificate_file)
        except ssl.SSLError as error:
            raise TLSFileError(
                f"certificate file {certificate_file!r} holds no usable PEM certificate: {error}"
            ) from error
    if client_certificate_file:
        try:
            context.load_cert_chain(client_certificate_file, client_key_file or None)
        except ssl.SSLError as error:
            raise TLSFileError(
                f"client certificate file {client_certificate_file!r} and client key file "
                f"{client_key_file!r} do not form a usable pair: {error}"
            ) from error


def response_result(response: Optional[ExportProfilesServiceResponse]) -> ExportResult:
    """SUCCESS, saying how many profiles the server rejected (and why) when it says so."""
    if response is None or not response.HasField("partial_success"):
        return ExportResult(ExportStatus.SUCCESS)
    partial = response.partial_success
    if partial.rejected_profiles > 0:
        reason = partial.error_message or "no reason given"
        return ExportResult(
            ExportStatus.SUCCESS,
            f"partial success: server rejected {partial.rejected_profiles} profile(s): {reason}",
        )
    if partial.error_message:
        # The spec lets a server warn without rejecting anything; pass the warning on.
        return ExportResult(ExportStatus.SUCCESS, f"server warning: {partial.error_message}")
    return ExportResult(ExportStatus.SUCCESS)


def truncate(text: str, limit: int = 300) -> str:
    """Keep error text from a server short enough for one log line."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
