"""What both transports do with a request: decode, validate, hand to the pipelines, answer.

Protobuf requests take the fast path (fastpath: checked on their wire bytes, forwarded as a
head that re-encodes without rebuilding profiles) unless it cannot vouch for them; then, and
for JSON, the full message is decoded and validated, which names any problem.

The outcome decides the answer: OK only once every pipeline has the request durably queued;
INVALID (INVALID_ARGUMENT / 400) for malformed data, never retried; REFUSED (UNAVAILABLE / 503
with a retry delay) when over a budget or when something downstream failed in a way a retry
can fix. Request contents are never logged.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Any, Optional

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)

from collector_processor.errors import (
    InvalidRequestError,
    PermanentError,
    RefusedError,
    RetryableError,
    ShutdownError,
    describe_exception,
)
from collector_processor.extension.file_storage import StorageError
from collector_processor.fastpath import vouch
from collector_processor.normalize import resolve_string_references
from collector_processor.pipeline import Fanout
from collector_processor.telemetry import Metrics
from collector_processor.validation import validate_request

__all__ = ["Ingest", "Outcome", "Result", "parse_protobuf"]

logger = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER_SECONDS = 1.0


class Outcome(enum.Enum):
    OK = "ok"
    INVALID = "invalid"
    REFUSED = "refused"
    UNAUTHENTICATED = "unauthenticated"
    TOO_LARGE = "too_large"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    message: str = ""
    retry_after_seconds: float = DEFAULT_RETRY_AFTER_SECONDS


def parse_protobuf(body: bytes) -> ExportProfilesServiceRequest:
    request = ExportProfilesServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise InvalidRequestError(
            f"cannot decode ExportProfilesServiceRequest protobuf ({len(body)} bytes): {exc}"
        ) from None
    return request


class Ingest:
    """One per receiver and transport: counts and routes requests."""

    def __init__(
        self, receiver_id: str, transport: str, consumer: Fanout, metrics: Metrics
    ) -> None:
        self.receiver_id = receiver_id
        self.transport = transport
        self.consumer = consumer
        self._received = metrics.counter(
            "receiver_received_requests_total", "Requests that reached the receiver."
        )
        self._accepted = metrics.counter(
            "receiver_accepted_requests_total",
            "Requests accepted (durably queued for every exporter).",
        )
        self._accepted_profiles = metrics.counter(
            "receiver_accepted_profiles_total", "Profiles in accepted requests."
        )
        self._accepted_samples = metrics.counter(
            "receiver_accepted_samples_total", "Samples in accepted requests."
        )
        self._refused = metrics.counter(
            "receiver_refused_requests_total", "Requests answered with an error, by reason."
        )

    def admit(self) -> Optional[Result]:
        """A retryable refusal if the pipelines would refuse anyway; ask before decoding."""
        error = self.consumer.admission_error()
        if error is None:
            return None
        return self.refuse(Result(Outcome.REFUSED, str(error), error.retry_after_seconds))

    def refuse(self, result: Result) -> Result:
        """Count a request turned away before decoding (auth, size, media type)."""
        self._received.inc(receiver=self.receiver_id, transport=self.transport)
        return self._count_refused(result)

    def _count_refused(self, result: Result) -> Result:
        self._refused.inc(
            receiver=self.receiver_id, transport=self.transport, reason=result.outcome.value
        )
        return result

    async def accept_protobuf(self, body: bytes) -> Result:
        """Decode, validate and forward a protobuf request."""
        try:
            vouched = vouch(body)
        except Exception as exc:  # a bug in the fast path must not cost the request
            logger.error(
                "receiver %s: fast path failed: %s", self.receiver_id, describe_exception(exc)
            )
            vouched = None
        if vouched is None:  # the exact path: full decode, validation naming the problem
            try:
                request = parse_protobuf(body)
            except InvalidRequestError as exc:
                return self.invalid(str(exc))
            return await self.accept(request, body)
        self._received.inc(receiver=self.receiver_id, transport=self.transport)
        return await self._forward(vouched.request, vouched.profiles, vouched.samples)

    async def accept(
        self, request: ExportProfilesServiceRequest, wire: Optional[bytes] = None
    ) -> Result:
        """Validate and forward ``request``; ``wire`` is the protobuf it came from, if any."""
        self._received.inc(receiver=self.receiver_id, transport=self.transport)
        if not request.resource_profiles:  # answered OK, as by the Collector
            return self._accepted_result(0, 0)
        try:
            validate_request(request, wire)
        except InvalidRequestError as exc:
            return self._count_refused(Result(Outcome.INVALID, str(exc)))
        except Exception as exc:
            return self._internal_error(exc)
        profiles, samples = _count(request)
        return await self._forward(request, profiles, samples)

    async def _forward(self, request: Any, profiles: int, samples: int) -> Result:
        """Hand a valid ``request`` (full message or wireviews head) to the pipelines."""
        try:
            resolve_string_references(request)
            await self.consumer.consume(request)
        except (InvalidRequestError, PermanentError) as exc:
            return self._count_refused(Result(Outcome.INVALID, str(exc)))
        except RefusedError as exc:
            return self._count_refused(Result(Outcome.REFUSED, str(exc), exc.retry_after_seconds))
        except (RetryableError, ShutdownError) as exc:
            return self._count_refused(Result(Outcome.REFUSED, str(exc)))
        except StorageError as exc:
            # Disk full or unwritable: nothing was accepted, the client retries later.
            return self._count_refused(Result(Outcome.REFUSED, str(exc)))
        except Exception as exc:
            return self._internal_error(exc)
        return self._accepted_result(profiles, samples)

    def _internal_error(self, exc: Exception) -> Result:
        logger.error("receiver %s: request failed: %s", self.receiver_id, describe_exception(exc))
        return self._count_refused(Result(Outcome.REFUSED, f"internal error: {type(exc).__name__}"))

    def _accepted_result(self, profiles: int, samples: int) -> Result:
        receiver, transport = self.receiver_id, self.transport
        self._accepted.inc(receiver=receiver, transport=transport)
        self._accepted_profiles.inc(profiles, receiver=receiver, transport=transport)
        self._accepted_samples.inc(samples, receiver=receiver, transport=transport)
        return Result(Outcome.OK)

    def invalid(self, message: str) -> Result:
        """Count a request that could not even be decoded."""
        self._received.inc(receiver=self.receiver_id, transport=self.transport)
        return self._count_refused(Result(Outcome.INVALID, message))


def _count(request: ExportProfilesServiceRequest) -> tuple[int, int]:
    profiles = samples = 0
    for resource_profiles in request.resource_profiles:
        for scope_profiles in resource_profiles.scope_profiles:
            profiles += len(scope_profiles.profiles)
            samples += sum(len(profile.samples) for profile in scope_profiles.profiles)
    return profiles, samples
