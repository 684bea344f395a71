"""POST /v1/events: authenticate, read, hand to the ingest core, answer after the commit."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from ..events import split_events
from ..exceptions import InvalidEvent, OutboxError
from ..gateway import Gateway
from ..ingest import RequestContext
from ..merge import BROWSER
from ..tiktok.schema import MAX_EVENTS_PER_REQUEST
from .auth import IngestKey, KeyRing, PerClientLimiter, client_ip, parse_networks

ALLOWED_HEADERS = "Authorization, Content-Type, X-Test-Event-Code"


class BodyTooLarge(Exception):
    pass


class BodyTooSlow(Exception):
    pass


class FastJSONResponse(JSONResponse):
    """A JSONResponse rendered by orjson: ingest answers every request with one."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error(status: int, message: str, headers: dict[str, str] | None = None,
          **extra: Any) -> JSONResponse:
    return FastJSONResponse({"error": message, **extra}, status, headers=headers)


async def accept_and_answer(gateway: Gateway, raws: list[Any], context: RequestContext, *,
                            acknowledge: bool = False) -> Response:
    """Store events and answer as every ingest route does: 202, 422, or 503 to retry later.

    `acknowledge`: a platform's webhook whose events were all rejected gets 200 with the
    reasons, not 422: the platform would retry it for hours and then disable the webhook,
    and resending cannot fix it. Only "could not store it" (503) asks for a retry.
    """
    try:
        browser = context.source == BROWSER
        if await gateway.overloaded(browser=browser):
            if browser:  # the shop's own server traffic keeps its room
                return error(429, "the outbox's share for browser keys is full; retry later",
                             {"Retry-After": "5"})
            return error(503, "the outbox is full; retry later", {"Retry-After": "5"})
        result = await gateway.accept(raws, context)
    except OutboxError:
        return error(503, "storage unavailable; nothing was stored, retry later",
                     {"Retry-After": "5"})
    if result.accepted or not result.rejected:
        return FastJSONResponse(result.as_dict(), 202)
    if acknowledge:
        return FastJSONResponse({"ignored": True, "reason": "rejected", **result.as_dict()}, 200)
    return FastJSONResponse(result.as_dict(), 422)


async def read_limited(request: Request, max_body: int, timeout: float = 30.0) -> bytes:
    """The body, or BodyTooLarge as soon as it passes `max_body` (never read whole first), or
    BodyTooSlow when it has not all arrived within `timeout` seconds."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_body:
        raise BodyTooLarge
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_body:
                    raise BodyTooLarge
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTooSlow from None
    return b"".join(chunks)


class Ingest:
    """The ingest endpoint for one gateway."""

    def __init__(self, gateway: Gateway, keys: KeyRing) -> None:
        self.gateway = gateway
        self.keys = keys
        self.limiter = PerClientLimiter()
        self.trusted = parse_networks(gateway.settings.server.trusted_proxies)
        self.max_body = gateway.settings.server.max_body_bytes
        self.body_timeout = gateway.settings.server.body_timeout_seconds

    async def endpoint(self, request: Request) -> Response:
        origin = request.headers.get("origin", "").rstrip("/")
        if request.method == "OPTIONS":
            return self.preflight(origin)
        key = self.keys.find_presented(request)
        if key is None:
            where = (" (a key in the URL is taken only for browser keys: server keys are secret, "
                     "and URLs are logged)" if "key" in request.query_params else "")
            return error(401, "missing or unknown ingest key: send Authorization: Bearer <key>"
                         + where, {"WWW-Authenticate": "Bearer"})
        cors = self.cors_headers(key, origin)
        if key.is_browser and cors is None:
            return error(403, f"origin {origin or '(none)'} is not allowed for key {key.name!r}")
        response = await self.handle(request, key)
        response.headers.update(cors or {})
        return response

    def preflight(self, origin: str) -> Response:
        if origin not in self.keys.browser_origins:
            return error(403, f"origin {origin or '(none)'} is not allowed")
        return Response(status_code=204, headers={
            "Access-Control-Allow-Origin": origin, "Vary": "Origin",
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": ALLOWED_HEADERS, "Access-Control-Max-Age": "600"})

    def cors_headers(self, key: IngestKey, origin: str) -> dict[str, str] | None:
        if not key.is_browser:
            return {}
        if origin not in key.allowed_origins:
            return None
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}

    async def handle(self, request: Request, key: IngestKey) -> Response:
        ip = client_ip(request, self.trusted)
        if key.is_browser:
            wait = self.limiter.wait(key.name, ip or "", key.rate_limit_per_minute)
            if wait:
                return error(429, "too many requests from this client",
                             {"Retry-After": str(math.ceil(wait))})
        try:
            payload = orjson.loads(await read_limited(request, self.max_body, self.body_timeout))
        except BodyTooLarge:
            return error(413, f"body larger than {self.max_body} bytes")
        except BodyTooSlow:
            return error(408, f"the body did not arrive within {self.body_timeout:g} s")
        except orjson.JSONDecodeError as exc:
            return error(400, f"body is not valid JSON: {exc}")
        except ClientDisconnect:
            return error(400, "client disconnected before sending the whole body")
        try:
            raws = split_events(payload)
        except InvalidEvent as exc:
            return error(400, str(exc))
        if len(raws) > MAX_EVENTS_PER_REQUEST:
            return error(413, f"{len(raws)} events: at most {MAX_EVENTS_PER_REQUEST} per request")
        return await self.store(raws, request, ip, key)

    async def store(self, raws: list[Any], request: Request, ip: str | None,
                    key: IngestKey) -> Response:
        context = RequestContext(ip, request.headers.get("user-agent"),
                                 request.headers.get("x-test-event-code") or None,
                                 from_shopper=key.from_shopper,
                                 custom_events=not key.is_browser or key.allow_custom_events,
                                 source=BROWSER if key.is_browser else "server")
        return await accept_and_answer(self.gateway, raws, context)
