"""Routes for the other sources: /tt.js, GA4's /mp/collect, and shop webhooks."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..config import WebhookSettings, resolve_secret
from ..events import parse_event
from ..exceptions import FieldError, InvalidEvent, OutboxError
from ..gateway import Gateway
from ..ingest import RequestContext
from ..sources import Webhook, verify_signature, webhooks
from ..sources.ga4 import ga4_events
from ..telemetry import BAD_SIGNATURE, filtered
from ..tiktok.schema import MAX_EVENTS_PER_REQUEST
from .auth import KeyRing
from .ingest import BodyTooLarge, BodyTooSlow, accept_and_answer, error, read_limited

logger = logging.getLogger("tiktok_gateway.webhooks")

SNIPPET = (Path(__file__).parent / "static" / "tt.js").read_bytes()


class Sources:
    def __init__(self, gateway: Gateway, keys: KeyRing, settings: WebhookSettings) -> None:
        self.gateway = gateway
        self.keys = keys
        self.settings = settings
        self.max_body = gateway.settings.server.max_body_bytes
        self.body_timeout = gateway.settings.server.body_timeout_seconds
        self._refused: dict[str, list[float]] = {}  # platform -> [refused since the line, when]
        self.secrets = webhook_secrets(settings)

    def routes(self) -> list[Route]:
        return [
            Route("/tt.js", self.snippet, methods=["GET"]),
            Route("/mp/collect", self.ga4, methods=["POST"]),
            Route("/debug/mp/collect", self.ga4_debug, methods=["POST"]),
            *(Route(f"/webhooks/{hook.platform}", self._endpoint(hook), methods=["POST"])
              for hook in webhooks()),
        ]

    async def snippet(self, request: Request) -> Response:
        return Response(SNIPPET, media_type="application/javascript",
                        headers={"Cache-Control": "public, max-age=300",
                                 "Access-Control-Allow-Origin": "*"})

    async def ga4(self, request: Request) -> Response:
        """GA4 Measurement Protocol: `api_secret` is a server ingest key of this gateway."""
        raws = await self._ga4_events(request)
        if isinstance(raws, Response):
            return raws
        # Server to server: the request's IP and user agent are the sender's, not the shopper's.
        return await accept_and_answer(self.gateway, raws, RequestContext(source="ga4"))

    async def ga4_debug(self, request: Request) -> Response:
        """GA4's validation endpoint: what would be refused, as `validationMessages`; stores
        nothing. Senders call it during set-up."""
        raws = await self._ga4_events(request, debug=True)
        if isinstance(raws, Response):
            return raws
        messages = []
        for index, raw in enumerate(raws):
            try:
                parse_event(raw)
            except InvalidEvent as exc:
                messages += [{"fieldPath": f"events[{index}].{e.field}", "description": e.message,
                              "validationCode": "VALUE_INVALID"} for e in exc.errors]
        return JSONResponse({"validationMessages": messages})

    async def _ga4_events(self, request: Request, *, debug: bool = False) -> list[Any] | Response:
        """A Measurement Protocol body's events, or the answer refusing it (the same bounds
        for both routes; the debug route says what is wrong as GA4's validation server does)."""
        key = self.keys.find(request.query_params.get("api_secret"))
        if key is None or key.is_browser:
            return JSONResponse({"error": "api_secret must be a server ingest key"}, 401)
        try:
            raws = ga4_events(orjson.loads(await read_limited(request, self.max_body,
                                                              self.body_timeout)))
        except BodyTooLarge:
            return error(413, f"body larger than {self.max_body} bytes")
        except BodyTooSlow:
            return error(408, f"the body did not arrive within {self.body_timeout:g} s")
        except (orjson.JSONDecodeError, InvalidEvent) as exc:
            if debug:
                return JSONResponse({"validationMessages": [{
                    "fieldPath": "", "description": str(exc), "validationCode": "VALUE_INVALID"}]})
            prefix = "body is not valid JSON: " if isinstance(exc, orjson.JSONDecodeError) else ""
            return JSONResponse({"error": f"{prefix}{exc}"}, 400)
        if len(raws) > MAX_EVENTS_PER_REQUEST:
            return error(413, f"{len(raws)} events: at most {MAX_EVENTS_PER_REQUEST} per request")
        return raws

    def _warn_bad_signature(self, platform: str) -> None:
        """A line a minute at most: a wrong secret (or a stranger) must not flood the log."""
        now = time.monotonic()
        refused = self._refused.setdefault(platform, [0, -1e9])
        refused[0] += 1
        if now - refused[1] >= 60:
            logger.warning("%s webhook refused: its signature does not match (%d since the last "
                           "line); check [webhooks] %s_secret against the platform's",
                           platform, refused[0], platform)
            self._refused[platform] = [0, now]

    def replace(self, settings: WebhookSettings) -> None:
        """Take new webhook secrets (a reload); the next webhook is checked against them."""
        self.secrets = webhook_secrets(settings)
        self.settings = settings

    def _endpoint(self, hook: Webhook) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self._webhook(request, hook, self.secrets.get(hook.platform, ()))

        return endpoint

    async def _webhook(self, request: Request, hook: Webhook,
                       secrets: tuple[str, ...]) -> Response:
        try:  # bounded before the signature is checked: a stranger can post anything here
            body = await read_limited(request, self.max_body, self.body_timeout)
        except BodyTooLarge:
            return error(413, f"body larger than {self.max_body} bytes")
        except BodyTooSlow:
            return error(408, f"the body did not arrive within {self.body_timeout:g} s")
        if secrets and hook.ping(request.headers):
            return JSONResponse({"ok": True})  # answered, nothing kept
        if not secrets:
            return JSONResponse({"error": f"{hook.platform} webhooks are not configured"}, 404)
        signature = request.headers.get(hook.signature_header)
        # Several secrets while one is rotated: the new one and the old.
        if not any([verify_signature(secret, body, signature) for secret in secrets]):
            self.gateway.count(f"({hook.platform})", "webhook", BAD_SIGNATURE)
            self._warn_bad_signature(hook.platform)
            return JSONResponse({"error": "invalid signature"}, 401)
        try:
            order: Any = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            order, problem = None, str(exc)
        else:
            problem = ""
        # From here on every answer is a 2xx, with the reason when nothing is sent: a platform
        # retries anything else for hours, then disables the webhook.
        reason = None if problem else hook.not_sent(request.headers, order, self.settings)
        if reason is not None:
            self.gateway.count(f"({hook.platform})", "webhook", filtered(reason))
            answer: dict[str, Any] = {"ignored": True, "reason": reason}
            change = hook.change(order)
            if change and isinstance(order, dict) and order.get("id") is not None:
                try:
                    await self.gateway.record_change(str(order["id"])[:256], change, hook.platform)
                except OutboxError:
                    return error(503, "storage unavailable; retry later", {"Retry-After": "5"})
                answer["recorded"] = f"order {change}"
            return JSONResponse(answer)
        try:
            if problem:
                raise InvalidEvent([FieldError("body", problem)])
            raw = hook.to_event(request.headers, order)
        except InvalidEvent as exc:
            return JSONResponse({"ignored": True, "reason": "not an order", "error": str(exc)})
        context = RequestContext(test_only=hook.is_test(order), source="webhook")
        return await accept_and_answer(self.gateway, [raw], context, acknowledge=True)


def webhook_secrets(settings: WebhookSettings) -> dict[str, tuple[str, ...]]:
    """Each platform's secrets that resolve (none: its webhook answers 404)."""
    found = {}
    for hook in webhooks():
        references = hook.secret(settings)
        if isinstance(references, str):
            references = [references] if references else []
        resolved = [resolve_secret(r) for r in references]
        found[hook.platform] = tuple(s.get_secret_value() for s in resolved if s is not None)
    return found
