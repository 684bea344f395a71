"""Every error tiktok-gateway raises, in one tree.

* GatewayError          base; catch-all for users
  * ConfigError         raised at startup, never while running
  * InvalidEvent        an inbound event failed validation (ingest answers 4xx); .errors
  * OutboxError         the store failed; the driver's error is kept as __cause__
  * DeliveryError       talking to TikTok failed; .answer is its kind in tiktok/codes.py
                        (.retryable for short); retry.py decides what follows
    * TransportError    timeout or network failure, or a 5xx page; retryable
    * RateLimited       HTTP 429 or TikTok code 40100; retryable; .retry_after
    * APIError          TikTok answered with a non-zero code; .code, .message, .request_id
      * RejectedRequest auth or payload problems; not retryable
* DropEvent             pipeline control flow, deliberately outside the tree
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .tiktok.codes import Answer


def _codes() -> ModuleType:
    """The code table, imported when an error is made: importing it with this module would
    import the TikTok client, which imports this module."""
    from .tiktok import codes

    return codes


@dataclass(frozen=True)
class FieldError:
    """One problem with one field: `field` is a dotted path such as `user.email`."""

    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class GatewayError(Exception):
    """tiktok-gateway failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__)

    @property
    def message(self) -> str:
        return str(self.args[0])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class ConfigError(GatewayError):
    """The configuration is invalid."""


class InvalidEvent(GatewayError):
    """The event is invalid."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in self.errors))


class OutboxError(GatewayError):
    """The outbox store failed."""


class SchemaError(OutboxError):
    """The store's schema is older than this gateway needs, and it may not upgrade it."""


class DeliveryError(GatewayError):
    """Sending events to TikTok failed."""

    answer: Answer  # set by each subclass

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message)
        self.answer = _codes().Answer.BAD_REQUEST

    @property
    def retryable(self) -> bool:
        return self.answer.retryable


class TransportError(DeliveryError):
    """TikTok could not be reached, timed out, or answered with a server error."""

    def __init__(self, message: str | None = None, *, status: int | None = None,
                 code: int | None = None, tiktok_message: str | None = None,
                 request_id: str | None = None) -> None:
        super().__init__(message)
        self.answer = _codes().Answer.RETRY_LATER
        self.status = status
        # A server error with TikTok's own JSON body (code 50000, say) keeps what it said.
        self.code = code
        self.tiktok_message = tiktok_message or self.message
        self.request_id = request_id


class APIError(DeliveryError):
    """TikTok answered with a non-zero code."""

    def __init__(self, code: int, message: str, request_id: str | None = None) -> None:
        super().__init__(f"TikTok code {code}: {message}")
        self.answer = _codes().answer_for_code(code)
        self.code = code
        self.tiktok_message = message
        self.request_id = request_id


class RateLimited(APIError):
    """TikTok throttled the request (HTTP 429 or code 40100)."""

    def __init__(
        self,
        code: int,
        message: str,
        request_id: str | None = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(code, message, request_id)
        self.answer = _codes().Answer.RATE_LIMITED
        self.retry_after = retry_after


class RejectedRequest(APIError):
    """TikTok rejected the request for good: fix the token, pixel or payload first."""

    def __init__(self, code: int, message: str, request_id: str | None = None) -> None:
        super().__init__(code, message, request_id)
        answers = _codes().Answer
        if self.answer.retryable or self.answer in (answers.SUCCESS, answers.PARTIAL):
            # A refusal whose code alone would not say so (code 0 on an HTTP error status).
            self.answer = answers.BAD_REQUEST


class DropEvent(BaseException):  # noqa: N818 - a signal, named like structlog's
    """Drop the event being processed.

    Derives from BaseException because dropping is control flow, not an error.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
