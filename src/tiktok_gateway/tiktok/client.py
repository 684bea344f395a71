"""TikTokClient: posts Events API 2.0 requests and classifies what TikTok answers.

HTTP 200 can carry an error, so the client reads TikTok's `code`. Every outcome is one
of: delivered (a `Delivery`, possibly partial), retryable (`TransportError`,
`RateLimited`, `APIError` with `.retryable`), or rejected for good (`RejectedRequest`).
httpx's exceptions are translated here and nowhere else. The access token travels only
in the `Access-Token` header; it is never logged and never part of a repr.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx
import orjson
from pydantic import SecretStr, ValidationError

from ..clock import ReferenceClock
from ..exceptions import APIError, RateLimited, RejectedRequest, TransportError
from . import codes, schema
from .codes import Answer

logger = logging.getLogger("tiktok_gateway.client")


@dataclass(frozen=True)
class Delivery:
    """TikTok accepted the request (code 0), or part of it (code 20001)."""

    response: schema.TrackResponse
    http_status: int
    latency: float
    events: int

    @property
    def request_id(self) -> str | None:
        return self.response.request_id

    @property
    def partial(self) -> bool:
        return self.response.partial


@contextlib.contextmanager
def _map_transport_errors() -> Iterator[None]:
    """Translate httpx's errors into ours, keeping the original as __cause__."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise TransportError(f"timed out talking to TikTok ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise TransportError(f"could not reach TikTok: {exc or type(exc).__name__}") from exc


class TikTokClient:
    """An async client for one access token.

    Args:
        access_token: the Events API token for the pixels this client sends to.
        base_url: TikTok's API host, or the sandbox's URL.
        timeout: seconds for the whole request.
        transport: an httpx transport, e.g. `httpx.ASGITransport(app=sandbox)` in tests.
        partner_name: sent as `partner_name` in each request.
        clock: learns TikTok's time from each answer's `Date` (see clock.py).
    """

    def __init__(
        self,
        access_token: str | SecretStr,
        *,
        base_url: str = schema.DEFAULT_BASE_URL,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        partner_name: str | None = "tiktok-gateway",
        clock: ReferenceClock | None = None,
    ) -> None:
        self.clock = clock
        self._token = access_token if isinstance(access_token, SecretStr) else SecretStr(access_token)
        self.base_url = base_url.rstrip("/")
        self.partner_name = partner_name
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )

    def has_token(self, access_token: SecretStr) -> bool:
        return hmac.compare_digest(self._token.get_secret_value().encode(),
                                   access_token.get_secret_value().encode())

    def use_token(self, access_token: SecretStr) -> None:
        """Send with another token from the next request on (a rotated token, on reload)."""
        self._token = access_token

    def __repr__(self) -> str:
        return f"TikTokClient(base_url={self.base_url!r}, access_token='**********')"

    async def __aenter__(self) -> TikTokClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send_events(
        self,
        pixel_id: str,
        data: Sequence[dict[str, Any]],
        *,
        test_event_code: str | None = None,
    ) -> list[Delivery]:
        """Send events for one pixel in requests of at most 1,000; raise on the first failure."""
        deliveries = []
        for start in range(0, len(data), schema.MAX_EVENTS_PER_REQUEST):
            chunk = list(data[start:start + schema.MAX_EVENTS_PER_REQUEST])
            body = schema.build_request(pixel_id, chunk, test_event_code=test_event_code,
                                        partner_name=self.partner_name)
            deliveries.append(await self.send(body))
        return deliveries

    async def send(self, body: dict[str, Any], *, path: str = schema.TRACK_PATH) -> Delivery:
        """POST one request body; return the Delivery or raise a DeliveryError."""
        events = len(body.get("data") or body.get("batch") or [body])
        return await self.send_bytes(orjson.dumps(body), events, path=path)

    async def send_bytes(self, content: bytes, events: int, *,
                         path: str = schema.TRACK_PATH) -> Delivery:
        """POST a body already in JSON (`events` is only for the log)."""
        started, sent = time.perf_counter(), time.time()
        with _map_transport_errors():
            response = await self._http.post(
                path, content=content, headers={"Access-Token": self._token.get_secret_value()})
        latency = time.perf_counter() - started
        if self.clock is not None:
            self.clock.observe(response.headers.get("date"), sent, time.time())
        delivery = _classify(response, latency, events)
        logger.debug("TikTok accepted %d events in %.3fs (request_id %s)",
                     events, latency, delivery.request_id)
        return delivery


def _classify(response: httpx.Response, latency: float, events: int) -> Delivery:
    """A Delivery, or the DeliveryError that `codes` says the answer is."""
    status = response.status_code
    envelope = _envelope(response) if status < 500 and status not in (408, 429) else None
    by_status = codes.answer_for_status(status, json_body=envelope is not None)
    if by_status is Answer.RATE_LIMITED:
        raise RateLimited(codes.CODE_RATE_LIMITED, "HTTP 429 Too Many Requests",
                          retry_after=_retry_after(response))
    if by_status is Answer.RETRY_LATER:
        shape = " without a JSON body: " if 200 <= status < 300 else ": "
        said = _envelope(response) if status >= 500 else None
        if said is not None:
            raise TransportError(f"TikTok answered HTTP {status}: code {said.code}: {said.message}",
                                 status=status, code=said.code, tiktok_message=said.message,
                                 request_id=said.request_id)
        raise TransportError(f"TikTok answered HTTP {status}{shape}{_snippet(response)}",
                             status=status)
    assert envelope is not None  # without one, the status alone decided above
    answer = codes.answer_for_code(envelope.code)
    if answer in (Answer.SUCCESS, Answer.PARTIAL) and status < 300:
        return Delivery(envelope, status, latency, events)
    raise _api_error(envelope, response, answer)


def _api_error(envelope: schema.TrackResponse, response: httpx.Response,
               answer: Answer) -> APIError:
    code, message, request_id = envelope.code, envelope.message, envelope.request_id
    if answer is Answer.RATE_LIMITED:
        return RateLimited(code, message, request_id, retry_after=_retry_after(response))
    if answer.retryable:
        return APIError(code, message, request_id)
    return RejectedRequest(code, message, request_id)


def _envelope(response: httpx.Response) -> schema.TrackResponse | None:
    try:
        return schema.TrackResponse.model_validate_json(response.content)
    except ValidationError:
        return None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _snippet(response: httpx.Response) -> str:
    text = " ".join(response.text.split())
    return text[:200] or "(empty body)"
