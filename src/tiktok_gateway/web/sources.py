"""Routes for the other sources: /tt.js, GA4's /mp/collect, and shop webhooks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..config import WebhookSettings, resolve_secret
from ..exceptions import FieldError, InvalidEvent
from ..gateway import Gateway
from ..ingest import RequestContext
from ..sources import Webhook, verify_signature, webhooks
from ..sources.ga4 import ga4_events
from .auth import KeyRing
from .ingest import accept_and_answer

SNIPPET = (Path(__file__).parent / "static" / "tt.js").read_bytes()


class Sources:
    def __init__(self, gateway: Gateway, keys: KeyRing, settings: WebhookSettings) -> None:
        self.gateway = gateway
        self.keys = keys
        self.settings = settings

    def routes(self) -> list[Route]:
        return [
            Route("/tt.js", self.snippet, methods=["GET"]),
            Route("/mp/collect", self.ga4, methods=["POST"]),
            *(Route(f"/webhooks/{hook.platform}", self._endpoint(hook), methods=["POST"])
              for hook in webhooks()),
        ]

    async def snippet(self, request: Request) -> Response:
        return Response(SNIPPET, media_type="application/javascript",
                        headers={"Cache-Control": "public, max-age=300",
                                 "Access-Control-Allow-Origin": "*"})

    async def ga4(self, request: Request) -> Response:
        """GA4 Measurement Protocol: `api_secret` is a server ingest key of this gateway."""
        key = self.keys.find(request.query_params.get("api_secret"))
        if key is None or key.is_browser:
            return JSONResponse({"error": "api_secret must be a server ingest key"}, 401)
        try:
            raws = ga4_events(orjson.loads(await request.body()))
        except orjson.JSONDecodeError as exc:
            return JSONResponse({"error": f"body is not valid JSON: {exc}"}, 400)
        except InvalidEvent as exc:
            return JSONResponse({"error": str(exc)}, 400)
        # Server to server: the request's IP and user agent are the sender's, not the shopper's.
        return await accept_and_answer(self.gateway, raws, RequestContext())

    def _endpoint(self, hook: Webhook) -> Callable[[Request], Awaitable[Response]]:
        secret = _secret(hook.secret(self.settings))

        async def endpoint(request: Request) -> Response:
            return await self._webhook(request, hook, secret)

        return endpoint

    async def _webhook(self, request: Request, hook: Webhook, secret: str | None) -> Response:
        body = await request.body()
        if secret and hook.ping(request.headers):
            return JSONResponse({"ok": True})  # answered, nothing kept
        if secret is None:
            return JSONResponse({"error": f"{hook.platform} webhooks are not configured"}, 404)
        if not verify_signature(secret, body, request.headers.get(hook.signature_header)):
            self.gateway.count(f"({hook.platform})", "webhook", "bad_signature")
            return JSONResponse({"error": "invalid signature"}, 401)
        try:
            order: Any = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            order, error = None, str(exc)
        else:
            error = ""
        if not hook.wanted(request.headers, order, self.settings):
            return JSONResponse({"ignored": True})  # another topic or status: nothing to send
        try:
            if error:
                raise InvalidEvent([FieldError("body", error)])
            raw = hook.to_event(order)
        except InvalidEvent as exc:
            # A 2xx stops the platform retrying an order that will never be valid.
            return JSONResponse({"ignored": True, "error": str(exc)})
        return await accept_and_answer(self.gateway, [raw], RequestContext())


def _secret(reference: str) -> str | None:
    if not reference:
        return None
    secret = resolve_secret(reference)
    return secret.get_secret_value() if secret else None
