"""Routes for the other sources: /tt.js, GA4's /mp/collect, and shop webhooks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..config import WebhookSettings, resolve_secret
from ..exceptions import InvalidEvent
from ..gateway import Gateway, RequestContext
from ..observe import CounterBatch
from ..sources.ga4 import ga4_events
from ..sources.webhooks import shopify_order, verify_signature, woocommerce_order
from .auth import KeyRing
from .ingest import accept_and_answer

SNIPPET = (Path(__file__).parent / "static" / "tt.js").read_bytes()


class Sources:
    def __init__(self, gateway: Gateway, keys: KeyRing, settings: WebhookSettings) -> None:
        self.gateway = gateway
        self.keys = keys
        self.settings = settings
        self.shopify_secret = _secret(settings.shopify_secret)
        self.woocommerce_secret = _secret(settings.woocommerce_secret)

    def routes(self) -> list[Route]:
        return [
            Route("/tt.js", self.snippet, methods=["GET"]),
            Route("/mp/collect", self.ga4, methods=["POST"]),
            Route("/webhooks/shopify", self.shopify, methods=["POST"]),
            Route("/webhooks/woocommerce", self.woocommerce, methods=["POST"]),
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

    async def shopify(self, request: Request) -> Response:
        topic = request.headers.get("x-shopify-topic", "")
        return await self._webhook(request, "shopify", self.shopify_secret,
                                   request.headers.get("x-shopify-hmac-sha256"),
                                   topic in self.settings.shopify_topics, shopify_order)

    async def woocommerce(self, request: Request) -> Response:
        body = await request.body()
        if self.woocommerce_secret and not request.headers.get("x-wc-webhook-topic"):
            # The unsigned ping WooCommerce sends when the webhook is saved: answered, nothing kept.
            return JSONResponse({"ok": True})
        try:
            status = orjson.loads(body).get("status")
        except (orjson.JSONDecodeError, AttributeError):
            status = None
        return await self._webhook(request, "woocommerce", self.woocommerce_secret,
                                   request.headers.get("x-wc-webhook-signature"),
                                   status in self.settings.woocommerce_statuses, woocommerce_order)

    async def _webhook(self, request: Request, platform: str, secret: str | None,
                       signature: str | None, wanted: bool, mapper: Any) -> Response:
        body = await request.body()
        if secret is None:
            return JSONResponse({"error": f"{platform} webhooks are not configured"}, 404)
        if not verify_signature(secret, body, signature):
            counts = CounterBatch()
            counts.add(f"({platform})", "webhook", "bad_signature")
            self.gateway.telemetry.later(counts)
            return JSONResponse({"error": "invalid signature"}, 401)
        if not wanted:  # another topic or status: acknowledged, nothing to send
            return JSONResponse({"ignored": True})
        try:
            raw = mapper(orjson.loads(body))
        except (orjson.JSONDecodeError, InvalidEvent) as exc:
            # A 2xx stops the platform retrying an order that will never be valid.
            return JSONResponse({"ignored": True, "error": str(exc)})
        return await accept_and_answer(self.gateway, [raw], RequestContext())


def _secret(reference: str) -> str | None:
    if not reference:
        return None
    secret = resolve_secret(reference)
    return secret.get_secret_value() if secret else None
