"""Where events come from besides POST /v1/events: the browser, GA4 and shop webhooks.

Each source only turns its platform's format into the gateway's inbound event; the same
ingest (filters, mapping, hashing, dedup, outbox) does the rest. A shop platform is one
module here with a `WEBHOOK`, listed in `WEBHOOKS`: the web layer serves each at
`/webhooks/<platform>`, keyed by `[webhooks] <platform>_secret`.

Shopify and WooCommerce both sign the raw body with HMAC-SHA256 and the shop's secret,
base64-encoded, in a header. The event_id is `<order id>_<TikTok event>`, the same the
browser snippet computes on the thank-you page, so TikTok counts each order once; a
webhook the platform retries is a duplicate and dropped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import WebhookSettings


@dataclass(frozen=True)
class Webhook:
    """One shop platform's order webhook.

    Args:
        platform: the route's last part and the name in counters.
        signature_header: where the platform puts base64(HMAC-SHA256(secret, body)).
        secret: the secret reference(s) from the settings ("" when not configured; a list
            while one is rotated).
        not_sent: why an authentic body is not a purchase to send (its topic, or the order's
            state: unpaid, cancelled, refunded), or None when it is one.
        to_event: the platform's order as an inbound event; raises InvalidEvent.
        is_test: whether the order is a test order (sent only with a test code).
        change: "cancelled", "voided" or "refunded" when the order says so (recorded against
            the order, never sent), else None.
        ping: whether a request is the platform's unsigned set-up ping (answered, not kept).
    """

    platform: str
    signature_header: str
    secret: Callable[[WebhookSettings], str | list[str]]
    not_sent: Callable[[Mapping[str, str], Any, WebhookSettings], str | None]
    to_event: Callable[[Mapping[str, str], Any], dict[str, Any]]
    is_test: Callable[[Any], bool] = lambda order: False
    change: Callable[[Any], str | None] = lambda order: None
    ping: Callable[[Mapping[str, str]], bool] = lambda headers: False


def verify_signature(secret: str, body: bytes, signature: str | None) -> bool:
    """Whether `signature` is base64(HMAC-SHA256(secret, body)), compared in constant time."""
    if not signature:
        return False
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    return hmac.compare_digest(expected, signature.strip().encode())


def obj(value: Any) -> dict[str, Any]:
    """A JSON object from a platform's body, or an empty one for anything else."""
    return value if isinstance(value, dict) else {}


def compact(values: dict[str, Any]) -> dict[str, Any]:
    """Without the keys a platform left empty."""
    return {k: v for k, v in values.items() if v not in (None, "", [])}


def item_id(*candidates: Any) -> str | None:
    """A line item's id: the first of its ids the platform filled (custom items have none)."""
    for candidate in candidates:
        if candidate not in (None, "", 0):
            return str(candidate)
    return None


def webhooks() -> list[Webhook]:
    """Every shop platform the gateway serves."""
    from . import shopify, woocommerce

    return [shopify.WEBHOOK, woocommerce.WEBHOOK]
