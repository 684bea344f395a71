"""WooCommerce's order webhooks (`order.created`, `order.updated`) as purchase events."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from ..config import WebhookSettings
from ..exceptions import FieldError, InvalidEvent
from . import Webhook, compact, item_id, obj


def woocommerce_order(order: Any) -> dict[str, Any]:
    """A WooCommerce order (order.created / order.updated) as a purchase event."""
    if not isinstance(order, dict) or "id" not in order:
        raise InvalidEvent([FieldError("id", "not a WooCommerce order: no id")])
    billing = obj(order.get("billing"))
    user = compact({
        "email": billing.get("email"), "phone": billing.get("phone"),
        "external_id": str(order["customer_id"]) if order.get("customer_id") else None,
        "ip": order.get("customer_ip_address"), "user_agent": order.get("customer_user_agent"),
        "country": billing.get("country") or obj(order.get("shipping")).get("country"),
    })
    meta = {m.get("key"): m.get("value") for m in order.get("meta_data") or [] if isinstance(m, dict)}
    user.update(compact({"ttclid": meta.get("ttclid") or meta.get("_ttclid"),
                         "ttp": meta.get("_ttp") or meta.get("ttp")}))
    items = [compact({"item_id": item_id(li.get("sku"), li.get("variation_id"), li.get("product_id")),
                       "item_name": html.unescape(str(li.get("name") or "")), "price": li.get("price"),
                       "quantity": li.get("quantity")})
             for li in order.get("line_items") or [] if isinstance(li, dict)]
    when = order.get("date_paid_gmt") or order.get("date_created_gmt")
    return {"event": "purchase", "event_time": f"{when}Z" if when and "+" not in when else when,
            "user": user, "properties": compact({
                "order_id": str(order["id"]), "value": order.get("total"),
                "currency": order.get("currency"), "items": items or None})}


def _not_sent(headers: Mapping[str, str], order: Any, settings: WebhookSettings) -> str | None:
    """Why this order is not a purchase to send now, or None."""
    order = obj(order)
    status = order.get("status")
    if status not in settings.woocommerce_statuses:
        return f"status {status} is not configured in [webhooks] woocommerce_statuses"
    paid = order.get("date_paid_gmt") or order.get("date_paid")
    if not paid and not settings.woocommerce_count_unpaid:
        return "not paid yet (no date_paid: cash on delivery or cheque)"
    return None


def _ping(headers: Mapping[str, str]) -> bool:
    """The unsigned ping WooCommerce sends when the webhook is saved carries no topic."""
    return not headers.get("x-wc-webhook-topic")


WEBHOOK = Webhook("woocommerce", "x-wc-webhook-signature", lambda s: s.woocommerce_secret,
                  _not_sent, lambda headers, order: woocommerce_order(order), ping=_ping,
                  change=lambda order: _change(obj(order)))


def _change(order: dict[str, Any]) -> str | None:
    status = order.get("status")
    return status if status in ("cancelled", "refunded") else None
