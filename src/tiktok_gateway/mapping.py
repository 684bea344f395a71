"""Client event names and parameters to TikTok's, and the deterministic event_id.

Names: the built-in table covers GA4 e-commerce names, Segment's spec names and TikTok's
own names in any case. A destination can override any entry and choose `Purchase` or the
older `CompletePayment` for a completed order, `Lead` or `SubmitForm` for a lead.

Parameters: a destination's `property_map` renames the sender's property keys before the
event is parsed (`rename_properties`); `tiktok_properties` then builds TikTok's
`properties`, with GA4 `items` as `contents`.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import identity
from .events import Item, Properties
from .exceptions import FieldError
from .tiktok import schema

PURCHASE = "<purchase>"  # resolved per destination: CompletePayment (default) or Purchase
LEAD = "<lead>"  # resolved per destination: Lead (default) or SubmitForm

BUILTIN_NAMES: dict[str, str] = {
    # TikTok's own names written in another case; the client-name entries below win
    # ("purchase" is GA4's name, so it follows the destination's purchase_event).
    **{name.lower(): name for name in schema.STANDARD_EVENTS},
    # GA4 recommended events
    "purchase": PURCHASE,
    "view_item": "ViewContent",
    "add_to_cart": "AddToCart",
    "add_to_wishlist": "AddToWishlist",
    "begin_checkout": "InitiateCheckout",
    "add_payment_info": "AddPaymentInfo",
    "search": "Search",
    "view_search_results": "Search",
    "sign_up": "CompleteRegistration",
    "complete_registration": "CompleteRegistration",
    "generate_lead": LEAD,
    "subscribe": "Subscribe",
    "contact": "Contact",
    "file_download": "Download",
    "download": "Download",
    "click": "ClickButton",
    "find_location": "FindLocation",
    "submit_application": "SubmitApplication",
    "start_trial": "StartTrial",
    "schedule": "Schedule",
    "customize_product": "CustomizeProduct",
    "place_order": "PlaceAnOrder",
    # Segment e-commerce spec, after normalisation ("Order Completed" -> order_completed)
    "order_completed": PURCHASE,
    # "Checkout Step Completed" fires once per step with no order id: never a purchase, and
    # left unmapped (a custom event) rather than inflating InitiateCheckout.
    "order_placed": "PlaceAnOrder",
    "product_viewed": "ViewContent",
    "product_added": "AddToCart",
    "product_added_to_wishlist": "AddToWishlist",
    "checkout_started": "InitiateCheckout",
    "payment_info_entered": "AddPaymentInfo",
    "products_searched": "Search",
    "signed_up": "CompleteRegistration",
    "form_submitted": LEAD,
    "product_clicked": "ClickButton",
    "subscription_created": "Subscribe",
    "callback_started": "Contact",
}

# Events that have no TikTok counterpart and must never go out, not even as custom events:
# a refund sent as an event would read as a conversion. Recorded as filtered instead.
NEVER_SENT = frozenset({"refund", "order_refunded", "order_cancelled"})

_SEPARATORS = re.compile(r"[\s\-]+")
_STANDARD_BY_LOWER = {name.lower(): name for name in schema.STANDARD_EVENTS}


@lru_cache(maxsize=4096)  # shops use a few dozen names; this runs for every event
def normalise_name(name: str) -> str:
    """`Order Completed` and `order-completed` both become `order_completed`."""
    return _SEPARATORS.sub("_", name.strip()).lower()


@dataclass(frozen=True)
class NameMapping:
    """How one destination names events on TikTok."""

    purchase_event: str = "CompletePayment"
    lead_event: str = "Lead"
    overrides: dict[str, str] = field(default_factory=dict)
    _overrides: dict[str, str] = field(init=False, repr=False, compare=False)
    # Answers already given: a shop sends a few dozen names, and this runs for every event.
    _known: dict[str, tuple[str, bool]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A target that is a standard name in another case ("download") means that name:
        # sent as written it would be a custom event, useless for optimisation.
        normalised = {normalise_name(k): _STANDARD_BY_LOWER.get(v.lower(), v)
                      for k, v in self.overrides.items()}
        object.__setattr__(self, "_overrides", normalised)
        object.__setattr__(self, "_known", {})

    def custom_targets(self) -> list[str]:
        """Override targets that are not TikTok standard names: sent as custom events."""
        return sorted({v for v in self._overrides.values()
                       if v not in schema.STANDARD_EVENTS and v not in (PURCHASE, LEAD)})

    def tiktok_name(self, client_name: str) -> tuple[str, bool]:
        """TikTok's name for a client event name, and whether it is a known (non-custom) name."""
        answer = self._known.get(client_name)
        if answer is None:
            answer = self._resolve(client_name)
            if len(self._known) < 4096:  # bounded: names are client input
                self._known[client_name] = answer
        return answer

    def _resolve(self, client_name: str) -> tuple[str, bool]:
        if client_name in schema.STANDARD_EVENTS:
            return client_name, True
        key = normalise_name(client_name)
        target = self._overrides.get(key) or BUILTIN_NAMES.get(key)
        if target is None:
            return client_name, False
        resolved = {PURCHASE: self.purchase_event, LEAD: self.lead_event}.get(target, target)
        return resolved, resolved in schema.STANDARD_EVENTS or key in self._overrides


def deterministic_event_id(order_id: str, tiktok_name: str) -> str:
    """`<order_id>_<TikTokEventName>`: the id a pixel can compute for the same order."""
    return f"{order_id}_{tiktok_name}"


def random_event_id() -> str:
    return uuid.uuid4().hex


def url_parameter(url: Any, name: str) -> str | None:
    """One query parameter of a URL (a landing page's `?ttclid=`), or None."""
    if not isinstance(url, str) or "?" not in url:
        return None
    values = parse_qs(urlsplit(url).query).get(name)
    return values[0] if values else None


def rename_properties(raw: Any, property_map: dict[str, str]) -> Any:
    """The raw event with its property keys renamed (`{"total": "value"}`), before parsing."""
    if not property_map or not isinstance(raw, dict):
        return raw
    props = raw.get("properties")
    if not isinstance(props, dict):
        return raw
    return {**raw, "properties": {property_map.get(k, k): v for k, v in props.items()}}


# Properties the pipeline reads itself; any other key is a custom property, passed through.
PROPERTY_FIELDS = frozenset(Properties.__annotations__)
_COPIED_PROPERTIES = ("value", "currency", "num_items", "order_id", "shop_id", "description")
_ITEM_TO_CONTENT = (("item_id", "content_id"), ("item_name", "content_name"),
                    ("item_category", "content_category"), ("item_brand", "brand"),
                    ("price", "price"), ("quantity", "quantity"))


def tiktok_properties(props: Properties, name: str, warnings: list[FieldError]) -> dict[str, Any]:
    """TikTok's `properties` for an event named `name`: contents from TikTok's or GA4's
    items, the recommended fields, the rest passed through as custom properties."""
    out: dict[str, Any] = {k: v for k, v in props.items() if k not in PROPERTY_FIELDS}
    if out:  # custom properties: never a place for an email or a phone number
        out = identity.scrub(out, "properties", warnings)
    given = props.get("contents")
    contents: list[dict[str, Any]] = (
        [{k: v for k, v in c.items() if v is not None} for c in given] if given
        else [_to_content(item) for item in props.get("items") or ()])
    content_type, content_ids = props.get("content_type"), props.get("content_ids")
    if contents:
        out["contents"] = contents
        out["content_type"] = content_type or "product"
        ids = content_ids or [c["content_id"] for c in contents if c.get("content_id")]
        if ids:
            out["content_ids"] = ids
    elif content_ids:
        out["content_ids"] = content_ids
        out["content_type"] = content_type or "product"
    for key in _COPIED_PROPERTIES:
        value = props.get(key)
        if value is not None:
            out[key] = value
    search = props.get("search_string") or props.get("query")
    if search:  # 2.0 reads search_string; integrations still send the legacy query too
        out["search_string"] = out["query"] = search
    _value_advice(out, name, warnings)
    return out


def _to_content(item: Item) -> dict[str, Any]:
    """TikTok's content item for a GA4 item."""
    return {ours: item[theirs] for theirs, ours in _ITEM_TO_CONTENT  # type: ignore[literal-required]
            if item.get(theirs) is not None}


def _value_advice(props: dict[str, Any], name: str, warnings: list[FieldError]) -> None:
    if "value" in props and "currency" not in props:
        warnings.append(FieldError("properties.currency",
                                   "value without currency: TikTok cannot use the value"))
    elif name in schema.VALUE_EVENTS and "value" not in props:
        warnings.append(FieldError("properties.value",
                                   f"recommended for {name}: value and currency"))
