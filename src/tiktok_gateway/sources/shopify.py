"""Shopify's order webhooks (`orders/create`, `orders/paid`) as purchase events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config import WebhookSettings
from ..exceptions import FieldError, InvalidEvent
from . import Webhook, compact, obj


def shopify_order(order: Any) -> dict[str, Any]:
    """A Shopify order (orders/create or orders/paid) as a purchase event."""
    if not isinstance(order, dict) or "id" not in order:
        raise InvalidEvent([FieldError("id", "not a Shopify order: no id")])
    customer = obj(order.get("customer"))
    billing = obj(order.get("billing_address"))
    client = obj(order.get("client_details"))
    notes = {n.get("name"): n.get("value") for n in order.get("note_attributes") or []
             if isinstance(n, dict)}
    user = compact({
        "email": order.get("email") or customer.get("email"),
        "phone": order.get("phone") or customer.get("phone") or billing.get("phone"),
        "external_id": str(customer["id"]) if customer.get("id") else None,
        "ip": order.get("browser_ip") or client.get("browser_ip"),
        "user_agent": client.get("user_agent"),
        "ttclid": notes.get("ttclid"), "ttp": notes.get("ttp") or notes.get("_ttp"),
    })
    items = [compact({"item_id": str(li.get("sku") or li.get("variant_id") or li.get("product_id")),
                       "item_name": li.get("title"), "price": li.get("price"),
                       "quantity": li.get("quantity")})
             for li in order.get("line_items") or [] if isinstance(li, dict)]
    return {"event": "purchase", "event_time": order.get("processed_at") or order.get("created_at"),
            "user": user, "properties": compact({
                "order_id": str(order["id"]), "value": order.get("total_price"),
                "currency": order.get("currency"), "items": items or None,
                "shop_id": _domain(order.get("order_status_url"))})}


def _domain(url: Any) -> str | None:
    if not isinstance(url, str) or "//" not in url:
        return None
    return url.split("//", 1)[1].split("/", 1)[0]


def _wanted(headers: Mapping[str, str], body: Any, settings: WebhookSettings) -> bool:
    return headers.get("x-shopify-topic", "") in settings.shopify_topics


WEBHOOK = Webhook("shopify", "x-shopify-hmac-sha256", lambda s: s.shopify_secret, _wanted,
                  shopify_order)
