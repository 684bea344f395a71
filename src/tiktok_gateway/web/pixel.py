"""POST /v1/pixel: what the page's TikTok pixel did, reported by /tt.js (the pixel leg).

Evidence for pairing only: nothing here is sent to TikTok. A browser key's public, so the
route has the ingest route's bounds (origin, per-client rate, body size and deadline) and
its own: at most MAX_LEGS legs a beacon, plain short strings, names TikTok knows.
"""

from __future__ import annotations

import math
import time
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from ..gateway import Gateway
from ..ingest import Destination
from ..pairing import PIXEL, Leg, browser_and_os, load_bucket
from .auth import IngestKey, client_ip
from .ingest import BodyTooLarge, BodyTooSlow, FastJSONResponse, Ingest, error, read_limited

MAX_LEGS = 50  # a page's pixel calls in one beacon
MAX_BODY = 32 * 1024
PLAIN = r"^[^\x00-\x1f\x7f]*$"  # no control characters (nor NUL, which PostgreSQL refuses)


class PixelLegIn(BaseModel):
    """One `ttq.track` call the page made, and what became of it."""

    model_config = ConfigDict(extra="ignore")

    event: str = Field(min_length=1, max_length=100, pattern=PLAIN)
    event_id: str = Field(min_length=1, max_length=256, pattern=PLAIN)
    order_id: str = Field(default="", max_length=200, pattern=PLAIN)
    pixel: Literal["loaded", "blocked", "not_loaded", "consent"]
    load_ms: float | None = Field(default=None, ge=0, le=86_400_000)
    pixel_id: str = Field(default="", max_length=64, pattern=PLAIN)


class PixelBeacon(BaseModel):
    model_config = ConfigDict(extra="ignore")

    legs: list[PixelLegIn] = Field(max_length=MAX_LEGS)


class PixelReports:
    """The pixel-leg endpoint, sharing the ingest endpoint's keys, CORS and rate limit."""

    def __init__(self, gateway: Gateway, ingest: Ingest) -> None:
        self.gateway = gateway
        self.ingest = ingest
        self.by_pixel = {d.settings.pixel_id: d for d in gateway.destinations}

    async def endpoint(self, request: Request) -> Response:
        origin = request.headers.get("origin", "").rstrip("/")
        if request.method == "OPTIONS":
            return self.ingest.preflight(origin)
        key = self.ingest.keys.find_presented(request)
        if key is None:
            return error(401, "missing or unknown ingest key: send ?key=<browser key>",
                         {"WWW-Authenticate": "Bearer"})
        cors = self.ingest.cors_headers(key, origin)
        if key.is_browser and cors is None:
            return error(403, f"origin {origin or '(none)'} is not allowed for key {key.name!r}")
        response = await self.record(request, key)
        response.headers.update(cors or {})
        return response

    async def record(self, request: Request, key: IngestKey) -> Response:
        ip = client_ip(request, self.ingest.trusted)
        if key.is_browser:
            wait = self.ingest.limiter.wait(key.name, ip or "", key.rate_limit_per_minute)
            if wait:
                return error(429, "too many requests from this client",
                             {"Retry-After": str(math.ceil(wait))})
        try:
            body = await read_limited(request, MAX_BODY, self.ingest.body_timeout)
            beacon = PixelBeacon.model_validate(orjson.loads(body))
        except BodyTooLarge:
            return error(413, f"body larger than {MAX_BODY} bytes")
        except BodyTooSlow:
            return error(408, "the body did not arrive in time")
        except orjson.JSONDecodeError as exc:
            return error(400, f"body is not valid JSON: {exc}")
        except ClientDisconnect:
            return error(400, "client disconnected before sending the whole body")
        except ValidationError as exc:
            return error(400, "invalid pixel report", errors=[
                {"field": ".".join(map(str, e["loc"])), "message": e["msg"]}
                for e in exc.errors(include_url=False, include_input=False)])
        browser_name, os = browser_and_os(request.headers.get("user-agent"))
        now = time.time()
        legs: list[Leg] = []
        ignored: list[dict[str, object]] = []
        for index, leg in enumerate(beacon.legs):
            targets = self.destinations_of(leg.pixel_id)
            name, known = targets[0].route.options.names.tiktok_name(leg.event)
            if not (known or key.allow_custom_events or not key.is_browser):
                ignored.append({"index": index, "field": "event",
                                "message": "neither a TikTok standard event nor configured"})
                continue
            legs.extend(Leg(d.settings.name, PIXEL, name, leg.event_id, leg.order_id, now,
                            leg.pixel, browser_name, os, load_bucket(leg.load_ms))
                        for d in targets)
        self.gateway.record_pixel_legs(legs)
        return FastJSONResponse({"recorded": len(beacon.legs) - len(ignored),
                                 "ignored": ignored}, 202)

    def destinations_of(self, pixel_id: str) -> list[Destination]:
        """The destination of the page's pixel id; every destination when it is unknown."""
        match = self.by_pixel.get(pixel_id)
        return [match] if match else self.gateway.destinations
