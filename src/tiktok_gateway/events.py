"""The gateway's inbound event: what shops send, validated once at the edge.

Close to TikTok's 2.0 `data[]` item so it is familiar, but lenient where shops differ:
GA4 event names and `items`, numeric ids, times in seconds, milliseconds or ISO 8601,
amounts as strings, currencies in any case. Everything behind `parse_event` trusts the
`Event` it returns, and each event is parsed once. The model holds raw personal data in
memory only; `identity` hashes it before anything is stored.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Annotated, Any

import pycountry
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    with_config,
)
from typing_extensions import TypedDict

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


def _iso_4217(value: str | None) -> str | None:
    if value is None:
        return None
    code = value.upper()
    if not _is_currency(code):
        raise ValueError(f"{value!r} is not an ISO 4217 currency code (e.g. USD, EUR)")
    return code


def _content_type(value: str | None) -> str | None:
    if value is not None and value not in ("product", "product_group"):
        raise ValueError("must be product (SKU ids) or product_group (item group ids)")
    return value


# Ids are stored as database text, and PostgreSQL text cannot hold NUL: refused at the edge
# with a clear message (see _field_errors) rather than failing the whole request in storage.
_NO_NUL = r"^[^\x00]*$"
StoredText = Annotated[str, StringConstraints(pattern=_NO_NUL)]
# A sane range for money: "Infinity", "1e309" or 1e308 is a bug or an attack, never an order.
MAX_AMOUNT = 10_000_000_000


def _sane_amount(value: float) -> float:
    if not math.isfinite(value) or value > MAX_AMOUNT:
        raise ValueError(f"must be a finite number of at most {MAX_AMOUNT:,}")
    return value + 0.0  # -0.0 becomes 0.0


NonNegative = Annotated[float, BeforeValidator(_to_number), Field(ge=0),
                        AfterValidator(_sane_amount)]
Count = Annotated[int, Field(ge=0)]
StringList = Annotated[list[str], BeforeValidator(_to_list)]
Currency = Annotated[str, AfterValidator(_iso_4217)]
ContentType = Annotated[str, AfterValidator(_content_type)]

# Numbers become strings where TikTok wants strings (event_id, order_id, content_id).
_LENIENT = ConfigDict(coerce_numbers_to_str=True, str_strip_whitespace=True)
_LENIENT_OPEN = ConfigDict(coerce_numbers_to_str=True, str_strip_whitespace=True, extra="allow")

# The parts of an event are TypedDicts: validated like models, but kept as plain dicts,
# which costs a third of building model instances on every event. A key is present only
# when the sender sent it; a field sent as null is present with None.


@with_config(_LENIENT_OPEN)
class User(TypedDict, total=False):
    """Customer data as received; raw values are hashed by the pipeline, never stored.

    Unknown keys are kept, so that the pipeline can name them in a warning.
    """

    email: StringList | None
    phone: StringList | None
    external_id: StringList | None
    ttclid: str | None
    ttp: str | None
    ip: str | None
    user_agent: str | None
    locale: str | None
    # The order's country (billing, else shipping), ISO 3166 alpha-2: how a national phone
    # number is read. Not sent to TikTok.
    country: str | None


@with_config(_LENIENT)
class Content(TypedDict, total=False):
    """One item, in TikTok's shape."""

    content_id: str | None
    content_name: str | None
    content_category: str | None
    brand: str | None
    price: NonNegative | None
    quantity: Count | None


@with_config(_LENIENT)
class Item(TypedDict, total=False):
    """One item, in GA4's e-commerce shape."""

    item_id: str | None
    item_name: str | None
    item_category: str | None
    item_brand: str | None
    price: NonNegative | None
    quantity: Count | None


@with_config(_LENIENT_OPEN)
class Properties(TypedDict, total=False):
    """Event parameters; unknown keys are kept and pass through as custom properties."""

    value: NonNegative | None
    currency: Currency | None
    contents: list[Content] | None
    items: list[Item] | None
    content_type: ContentType | None
    content_ids: list[str] | None
    num_items: Count | None
    # An order's event_id is `<order_id>_<Event>`, and event ids are at most 256 characters.
    order_id: Annotated[StoredText, StringConstraints(max_length=200)] | None
    shop_id: str | None
    search_string: str | None
    query: str | None
    description: str | None


@with_config(_LENIENT)
class Page(TypedDict, total=False):
    url: str | None
    referrer: str | None


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, coerce_numbers_to_str=True, str_strip_whitespace=True)


class Event(_Model):
    """One inbound event, as a shop, a browser or a webhook sends it to the gateway."""

    event: StoredText = Field(min_length=1, max_length=100)
    event_id: StoredText | None = Field(default=None, max_length=256)
    event_time: Annotated[int, BeforeValidator(_to_event_time)] = Field(
        default_factory=lambda: int(time.time())
    )
    user: User = Field(default_factory=lambda: User())
    properties: Properties = Field(default_factory=lambda: Properties())
    page: Page | None = None
    limited_data_use: bool | None = None
    test_event_code: StoredText | None = Field(default=None, max_length=100)
    # Consent per category, e.g. {"marketing": false}; checked by the destination's filter.
    consent: dict[str, bool | str] | None = None

    @property
    def order_id(self) -> str | None:
        return self.properties.get("order_id")


# The model's compiled validator, called directly: `model_validate` only adds a Python frame.
_validate_event: Callable[[Any], Event] = Event.__pydantic_validator__.validate_python


def parse_event(raw: Any) -> Event:
    """Validate one inbound event, or raise InvalidEvent naming each bad field."""
    if not isinstance(raw, dict):
        raise InvalidEvent([FieldError("event", "must be a JSON object")])
    try:
        return _validate_event(raw)
    except ValidationError as exc:
        raise InvalidEvent(_field_errors(exc)) from None


def _field_errors(exc: ValidationError) -> list[FieldError]:
    errors = []
    for error in exc.errors(include_url=False, include_input=False):
        path = ".".join(str(part) for part in error["loc"] if not _is_type_tag(part))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "string_pattern_mismatch" and error.get("ctx", {}).get(
                "pattern") == _NO_NUL:
            message = "must not contain a NUL character (\\u0000)"
        errors.append(FieldError(path or "event", message))
    return errors


def _is_type_tag(part: Any) -> bool:
    # pydantic adds union branch names such as "list[str]" to the location; users never see them.
    return isinstance(part, str) and ("[" in part or part in {"str", "int", "float", "bool"})


def _known_fields() -> frozenset[str]:
    nested = {"user": User, "properties": Properties, "page": Page}
    known = set(Event.model_fields) | {"body"}
    for name, model in nested.items():
        known.update(f"{name}.{field}" for field in model.__annotations__)
    return frozenset(known)


KNOWN_FIELDS = _known_fields()


def rejection_reason(field: str) -> str:
    """The field an error is counted under: the path's first two parts when the schema knows
    them (`properties.currency`), else its first (`properties`), else `other`."""
    parts = field.split(".")
    for depth in (2, 1):
        candidate = ".".join(parts[:depth])
        if len(parts) >= depth and candidate in KNOWN_FIELDS:
            return candidate
    return "other"


def split_events(payload: Any) -> list[Any]:
    """One event, a JSON list of events, `{"events": [...]}`, or a Segment/RudderStack HTTP
    API `{"batch": [...]}`, as a list."""
    if isinstance(payload, list):
        return payload
    for key in ("events", "batch"):
        if isinstance(payload, dict) and isinstance(payload.get(key), list):
            return list(payload[key])
        if isinstance(payload, dict) and key in payload:
            raise InvalidEvent([FieldError(key, "must be a list of events")])
    return [payload]
