"""Shop webhooks: signatures, and orders to purchase events.

Shopify and WooCommerce both sign the raw body with HMAC-SHA256 and the shop's secret,
base64-encoded, in a header. The event_id is `<order id>_<TikTok event>`, the same the
browser snippet computes on the thank-you page, so TikTok counts each order once; a
webhook the platform retries is a duplicate and dropped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from ..exceptions import FieldError, InvalidEvent


def verify_signature(secret: str, body: bytes, signature: str | None) -> bool:
    """Whether `signature` is base64(HMAC-SHA256(secret, body)), compared in constant time."""
    if not signature:
        return False
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    return hmac.compare_digest(expected, signature.strip().encode())


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def shopify_order(order: Any) -> dict[str, Any]:
    """A Shopify order (orders/create or orders/paid) as a purchase event."""
    if not isinstance(order, dict) or "id" not in order:
        raise InvalidEvent([FieldError("id", "not a Shopify order: no id")])
    customer = _object(order.get("customer"))
    billing = _object(order.get("billing_address"))
    client = _object(order.get("client_details"))
    notes = {n.get("name"): n.get("value") for n in order.get("note_attributes") or []
             if isinstance(n, dict)}
    user = _compact({
        "email": order.get("email") or customer.get("email"),
        "phone": order.get("phone") or customer.get("phone") or billing.get("phone"),
        "external_id": str(customer["id"]) if customer.get("id") else None,
        "ip": order.get("browser_ip") or client.get("browser_ip"),
        "user_agent": client.get("user_agent"),
        "ttclid": notes.get("ttclid"), "ttp": notes.get("ttp") or notes.get("_ttp"),
    })
    items = [_compact({"item_id": str(li.get("sku") or li.get("variant_id") or li.get("product_id")),
                       "item_name": li.get("title"), "price": li.get("price"),
                       "quantity": li.get("quantity")})
             for li in order.get("line_items") or [] if isinstance(li, dict)]
    return {"event": "purchase", "event_time": order.get("processed_at") or order.get("created_at"),
            "user": user, "properties": _compact({
                "order_id": str(order["id"]), "value": order.get("total_price"),
                "currency": order.get("currency"), "items": items or None,
                "shop_id": _domain(order.get("order_status_url"))})}


def woocommerce_order(order: Any) -> dict[str, Any]:
    """A WooCommerce order (order.created / order.updated) as a purchase event."""
    if not isinstance(order, dict) or "id" not in order:
        raise InvalidEvent([FieldError("id", "not a WooCommerce order: no id")])
    billing = _object(order.get("billing"))
    user = _compact({
        "email": billing.get("email"), "phone": billing.get("phone"),
        "external_id": str(order["customer_id"]) if order.get("customer_id") else None,
        "ip": order.get("customer_ip_address"), "user_agent": order.get("customer_user_agent"),
    })
    meta = {m.get("key"): m.get("value") for m in order.get("meta_data") or [] if isinstance(m, dict)}
    user.update(_compact({"ttclid": meta.get("ttclid"), "ttp": meta.get("_ttp") or meta.get("ttp")}))
    items = [_compact({"item_id": str(li.get("sku") or li.get("variation_id") or li.get("product_id")),
                       "item_name": li.get("name"), "price": li.get("price"),
                       "quantity": li.get("quantity")})
             for li in order.get("line_items") or [] if isinstance(li, dict)]
    when = order.get("date_paid_gmt") or order.get("date_created_gmt")
    return {"event": "purchase", "event_time": f"{when}Z" if when and "+" not in when else when,
            "user": user, "properties": _compact({
                "order_id": str(order["id"]), "value": order.get("total"),
                "currency": order.get("currency"), "items": items or None})}


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v not in (None, "", [])}


def _domain(url: Any) -> str | None:
    if not isinstance(url, str) or "//" not in url:
        return None
    return url.split("//", 1)[1].split("/", 1)[0]
