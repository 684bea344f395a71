"""Segment and RudderStack spec calls (`track`), as their HTTP APIs and forwarders send them.

`/v1/events` takes these as they are, alone or as `{"batch": [...]}`: the envelope's
`userId` becomes external_id; `context.traits` email and phone, `context.ip`,
`context.userAgent` (the shopper's, as the browser library recorded them), `context.locale`
and `context.page` fill the user and page; `timestamp` is the event time. E-commerce spec
properties need no property map: `total` (else `revenue`) is the value, `products[]` (or a
`Product Viewed` / `Product Added` product at the top of `properties`) the contents.
"""

from __future__ import annotations

from typing import Any

from . import compact, item_id, obj

SPEC_TYPES = frozenset({"track"})
# Spec events whose product sits at the top of `properties`.
_SINGLE_PRODUCT = frozenset({"product viewed", "product added", "product removed",
                             "product clicked", "product added to wishlist"})
_SPEC_ONLY = ("products", "total", "revenue", "product_id", "sku", "name", "price", "quantity",
              "category", "brand", "checkout_id", "subtotal", "tax", "shipping", "discount",
              "coupon", "affiliation", "step")


def is_spec_call(raw: Any) -> bool:
    """Whether an inbound body is a Segment/RudderStack spec call rather than our event."""
    return isinstance(raw, dict) and raw.get("type") in SPEC_TYPES and "event" in raw


def from_spec(call: dict[str, Any]) -> dict[str, Any]:
    """The gateway's inbound event for one spec `track` call."""
    context = obj(call.get("context"))
    traits = obj(context.get("traits"))
    props = obj(call.get("properties"))
    user = compact({
        "external_id": str(call["userId"]) if call.get("userId") else None,
        "email": traits.get("email"), "phone": traits.get("phone"),
        "ip": context.get("ip"), "user_agent": context.get("userAgent"),
        "locale": context.get("locale"), "country": obj(traits.get("address")).get("country"),
        "ttclid": props.get("ttclid") or traits.get("ttclid"), "ttp": props.get("ttp"),
    })
    event: dict[str, Any] = {"event": call.get("event"), "user": user,
                             "properties": _properties(str(call.get("event") or ""), props)}
    page = obj(context.get("page"))
    if page.get("url"):
        event["page"] = compact({"url": page.get("url"), "referrer": page.get("referrer")})
    when = call.get("timestamp") or call.get("originalTimestamp")
    if when:
        event["event_time"] = when
    if call.get("messageId") and not props.get("order_id"):
        event["event_id"] = str(call["messageId"])  # an order's event_id comes from its order
    return event


def _properties(name: str, props: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in props.items() if k not in _SPEC_ONLY}
    value = next((props[k] for k in ("total", "revenue", "value") if props.get(k) is not None),
                 None)
    if value is not None:
        out["value"] = value
    products = props.get("products")
    if isinstance(products, list):
        out["contents"] = [_content(p) for p in products if isinstance(p, dict)]
    elif name.strip().lower() in _SINGLE_PRODUCT:
        out["contents"] = [_content(props)]
        if value is None and props.get("price") is not None:
            out["value"] = props["price"]
    return compact(out)


def _content(product: dict[str, Any]) -> dict[str, Any]:
    return compact({"content_id": item_id(product.get("product_id"), product.get("sku")),
                    "content_name": product.get("name"), "price": product.get("price"),
                    "quantity": product.get("quantity"),
                    "content_category": product.get("category"), "brand": product.get("brand")})
