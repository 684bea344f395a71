"""The gateway's inbound event: what shops send, validated once at the edge.

Close to TikTok's 2.0 `data[]` item so it is familiar, but lenient where shops differ:
GA4 event names and `items`, numeric ids, times in seconds, milliseconds or ISO 8601,
amounts as strings, currencies in any case. Everything behind `parse_event` trusts the
`Event` it returns. The model holds raw personal data in memory only; `pipeline`
hashes it before anything is stored.
"""

from __future__ import annotations

import math
import time
from functools import lru_cache
from typing import Annotated, Any

import pycountry
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from .exceptions import FieldError, InvalidEvent
from .timeparse import iso_to_seconds

MILLISECONDS_THRESHOLD = 100_000_000_000  # a Unix time above this is in milliseconds


def _to_list(value: Any) -> Any:
    """Accept one string or a list of strings for multi-valued user fields."""
    return [value] if isinstance(value, str | int) and not isinstance(value, bool) else value


def _to_number(value: Any) -> Any:
    """Accept `"46.00"` as well as `46`: shops often send amounts as strings."""
    if isinstance(value, str):
        text = value.strip().replace(",", "")
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{value!r} is not a number; send digits only, e.g. 46.5") from None
    return value


def _to_event_time(value: Any) -> Any:
    """Unix seconds, Unix milliseconds or ISO 8601 with an offset, to integer seconds."""
    if value is None:
        return int(time.time())
    if isinstance(value, bool):
        raise ValueError("must be a Unix time or an ISO 8601 time, not true/false")
    if isinstance(value, str) and value.strip().lstrip("-").replace(".", "", 1).isdigit():
        value = float(value)
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError("must be a positive Unix time")
        seconds = value / 1000 if value > MILLISECONDS_THRESHOLD else value
        return int(seconds)
    if isinstance(value, str):
        return iso_to_seconds(value)
    raise ValueError("must be a Unix time (seconds or milliseconds) or an ISO 8601 time")


@lru_cache(maxsize=512)
def _is_currency(code: str) -> bool:
    """ISO 4217, from pycountry's maintained list (cached: a shop uses a handful)."""
    return pycountry.currencies.get(alpha_3=code) is not None


NonNegative = Annotated[float, BeforeValidator(_to_number), Field(ge=0)]
StringList = Annotated[list[str], BeforeValidator(_to_list)]


class _Model(BaseModel):
    # Numbers become strings where TikTok wants strings (event_id, order_id, content_id).
    model_config = ConfigDict(frozen=True, coerce_numbers_to_str=True, str_strip_whitespace=True)


class User(_Model):
    """Customer data as received; raw values are hashed by the pipeline, never stored."""

    model_config = ConfigDict(extra="allow")

    email: StringList | None = None
    phone: StringList | None = None
    external_id: StringList | None = None
    ttclid: str | None = None
    ttp: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    locale: str | None = None


class Content(_Model):
    """One item, in TikTok's shape."""

    content_id: str | None = None
    content_name: str | None = None
    content_category: str | None = None
    brand: str | None = None
    price: NonNegative | None = None
    quantity: int | None = Field(default=None, ge=0)


class Item(_Model):
    """One item, in GA4's e-commerce shape."""

    item_id: str | None = None
    item_name: str | None = None
    item_category: str | None = None
    item_brand: str | None = None
    price: NonNegative | None = None
    quantity: int | None = Field(default=None, ge=0)

    def to_content(self) -> dict[str, Any]:
        """TikTok's content item; built as a plain dict, since the values are validated already."""
        pairs = (("content_id", self.item_id), ("content_name", self.item_name),
                 ("content_category", self.item_category), ("brand", self.item_brand),
                 ("price", self.price), ("quantity", self.quantity))
        return {k: v for k, v in pairs if v is not None}


class Properties(_Model):
    """Event parameters; unknown keys pass through as custom properties."""

    model_config = ConfigDict(extra="allow")

    value: NonNegative | None = None
    currency: str | None = None
    contents: list[Content] | None = None
    items: list[Item] | None = None
    content_type: str | None = None
    content_ids: list[str] | None = None
    num_items: int | None = Field(default=None, ge=0)
    order_id: str | None = None
    shop_id: str | None = None
    search_string: str | None = None
    query: str | None = None
    description: str | None = None

    @field_validator("currency")
    @classmethod
    def _iso_4217(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = value.upper()
        if not _is_currency(code):
            raise ValueError(f"{value!r} is not an ISO 4217 currency code (e.g. USD, EUR)")
        return code

    @field_validator("content_type")
    @classmethod
    def _content_type(cls, value: str | None) -> str | None:
        if value is not None and value not in ("product", "product_group"):
            raise ValueError("must be product (SKU ids) or product_group (item group ids)")
        return value


class Page(_Model):
    url: str | None = None
    referrer: str | None = None


class Event(_Model):
    """One inbound event, as a shop, a browser or a webhook sends it to the gateway."""

    event: str = Field(min_length=1, max_length=100)
    event_id: str | None = Field(default=None, max_length=256)
    event_time: Annotated[int, BeforeValidator(_to_event_time)] = Field(
        default_factory=lambda: int(time.time())
    )
    user: User = Field(default_factory=User)
    properties: Properties = Field(default_factory=Properties)
    page: Page | None = None
    limited_data_use: bool | None = None
    test_event_code: str | None = None
    # Consent per category, e.g. {"marketing": false}; checked by the destination's filter.
    consent: dict[str, bool | str] | None = None

    @property
    def order_id(self) -> str | None:
        return self.properties.order_id


def parse_event(raw: Any, property_map: dict[str, str] | None = None) -> Event:
    """Validate one inbound event, or raise InvalidEvent naming each bad field."""
    if not isinstance(raw, dict):
        raise InvalidEvent([FieldError("event", "must be a JSON object")])
    if property_map:
        raw = _rename_properties(raw, property_map)
    try:
        return Event.model_validate(raw)
    except ValidationError as exc:
        raise InvalidEvent(_field_errors(exc)) from None


def _rename_properties(raw: dict[str, Any], property_map: dict[str, str]) -> dict[str, Any]:
    props = raw.get("properties")
    if not isinstance(props, dict):
        return raw
    renamed = {property_map.get(k, k): v for k, v in props.items()}
    return {**raw, "properties": renamed}


def _field_errors(exc: ValidationError) -> list[FieldError]:
    errors = []
    for error in exc.errors(include_url=False, include_input=False):
        path = ".".join(str(part) for part in error["loc"] if not _is_type_tag(part))
        message = error["msg"].removeprefix("Value error, ")
        errors.append(FieldError(path or "event", message))
    return errors


def _is_type_tag(part: Any) -> bool:
    # pydantic adds union branch names such as "list[str]" to the location; users never see them.
    return isinstance(part, str) and ("[" in part or part in {"str", "int", "float", "bool"})
