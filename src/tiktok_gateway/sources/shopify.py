"""Shopify's order webhooks (`orders/create`, `orders/paid`) as purchase events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config import WebhookSettings
from ..exceptions import FieldError, InvalidEvent
from ..mapping import url_parameter
from . import Webhook, compact, item_id, obj

# financial_status values of an order that has been paid (partially refunded was paid first).
PAID = frozenset({"paid", "partially_refunded"})


def shopify_order(order: Any, topic: str = "orders/create") -> dict[str, Any]:
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
        "ttclid": notes.get("ttclid") or url_parameter(order.get("landing_site"), "ttclid"),
        "ttp": notes.get("ttp") or notes.get("_ttp"),
        "country": billing.get("country_code") or obj(order.get("shipping_address")).get(
            "country_code"),
    })
    items = [compact({"item_id": item_id(li.get("sku"), li.get("variant_id"), li.get("product_id")),
                      "item_name": li.get("title"), "price": li.get("price"),
                      "quantity": li.get("quantity")})
             for li in order.get("line_items") or [] if isinstance(li, dict)]
    # orders/paid: the purchase happened when it was paid, which may be days after the order.
    paid_at = order.get("updated_at") if topic == "orders/paid" else None
    return {"event": "purchase",
            "event_time": paid_at or order.get("processed_at") or order.get("created_at"),
            "user": user, "properties": compact({
                "order_id": str(order["id"]), "value": order.get("total_price"),
                "currency": order.get("currency"), "items": items or None,
                "shop_id": _domain(order.get("order_status_url"))})}


def _domain(url: Any) -> str | None:
    if not isinstance(url, str) or "//" not in url:
        return None
    return url.split("//", 1)[1].split("/", 1)[0]


def _not_sent(headers: Mapping[str, str], order: Any, settings: WebhookSettings) -> str | None:
    """Why this order is not a live purchase to send now, or None."""
    topic = headers.get("x-shopify-topic", "")
    if topic not in settings.shopify_topics:
        return f"topic {topic or '(none)'} is not configured in [webhooks] shopify_topics"
    order = obj(order)
    if order.get("cancelled_at"):
        return "cancelled order"
    status = order.get("financial_status")
    if status in ("voided", "refunded"):
        return f"{status} order"
    if topic != "orders/paid" and status not in PAID:
        return f"not paid yet (financial_status {status}): sent when orders/paid comes"
    return None


WEBHOOK = Webhook("shopify", "x-shopify-hmac-sha256", lambda s: s.shopify_secret, _not_sent,
                  lambda headers, order: shopify_order(order, headers.get("x-shopify-topic", "")),
                  is_test=lambda order: obj(order).get("test") is True,
                  change=lambda order: _change(obj(order)))


def _change(order: dict[str, Any]) -> str | None:
    if order.get("cancelled_at"):
        return "cancelled"
    status = order.get("financial_status")
    return status if status in ("voided", "refunded") else None
