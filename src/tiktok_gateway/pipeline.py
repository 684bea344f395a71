"""From an inbound event to TikTok's 2.0 `data[]` item, per destination.

`transform()` parses, checks the time, maps the name, and normalises and hashes the
customer data: raw personal data ends here. A `Route` adds a destination's filters
(consent, event names, set-up session), each a small callable that raises `DropEvent`,
as structlog's processors do.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from . import identity, mapping
from .events import Event, Item, Properties, User, parse_event
from .exceptions import DropEvent, FieldError, InvalidEvent
from .tiktok import schema


@dataclass(frozen=True)
class TransformOptions:
    """How one destination turns inbound events into TikTok's."""

    names: mapping.NameMapping = field(default_factory=mapping.NameMapping)
    phone_region: str | None = None
    lowercase_external_id: bool = False
    property_map: dict[str, str] = field(default_factory=dict)
    max_age_seconds: int = 7 * 86400
    max_future_seconds: int = 300


@dataclass(slots=True)
class Transformed:
    """An event ready for TikTok: the hashed 2.0 item, and what was noticed on the way."""

    source: Event
    data: dict[str, Any]
    warnings: list[FieldError] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.data["event"])

    @property
    def event_id(self) -> str:
        return str(self.data["event_id"])

    @property
    def test_event_code(self) -> str | None:
        return self.source.test_event_code or None


def transform(raw: Any, options: TransformOptions, *, now: float | None = None) -> Transformed:
    """Validate, map, normalise and hash one raw inbound event; raise InvalidEvent."""
    return to_tiktok(parse_event(raw, options.property_map), options, now=now)


def to_tiktok(event: Event, options: TransformOptions, *, now: float | None = None) -> Transformed:
    """The 2.0 `data[]` item for a parsed event."""
    _check_time(event.event_time, time.time() if now is None else now, options)
    warnings: list[FieldError] = []
    name, known = options.names.tiktok_name(event.event)
    if not known:
        warnings.append(FieldError("event", f"{event.event!r} is not a TikTok standard event: "
                                            "sent as a custom event, not used for optimisation"))
    data: dict[str, Any] = {
        "event": name,
        "event_time": event.event_time,
        "event_id": _event_id(event, name, warnings),
    }
    user = hash_user(event.user, options, warnings)
    if user:
        data["user"] = user
    data["properties"] = _properties(event.properties, name, warnings)
    if event.page is not None:
        data["page"] = {k: v for k, v in event.page.items() if v is not None}
    if event.limited_data_use is not None:
        data["limited_data_use"] = event.limited_data_use
    return Transformed(event, data, warnings)


def _check_time(event_time: int, now: float, options: TransformOptions) -> None:
    if event_time < now - options.max_age_seconds:
        days = options.max_age_seconds / 86400
        raise InvalidEvent([FieldError("event_time", f"older than {days:g} days; TikTok "
                                                     "would not attribute it")])
    if event_time > now + options.max_future_seconds:
        raise InvalidEvent([FieldError("event_time", f"more than {options.max_future_seconds} s "
                                                     "in the future; check the sender's clock")])


def _event_id(event: Event, name: str, warnings: list[FieldError]) -> str:
    if event.event_id:
        return event.event_id
    if event.order_id:
        return mapping.deterministic_event_id(event.order_id, name)
    warnings.append(FieldError("event_id", "no event_id and no order_id: a random id was used, "
                                           "so TikTok cannot deduplicate against the pixel"))
    return mapping.random_event_id()


# --- user ----------------------------------------------------------------------------------


_USER_FIELDS = frozenset(User.__annotations__)


def hash_user(user: User, options: TransformOptions, warnings: list[FieldError]) -> dict[str, Any]:
    """TikTok's `user` object: email, phone, external_id hashed; the rest as received."""
    out: dict[str, Any] = {}
    emails, phones, external_ids = user.get("email"), user.get("phone"), user.get("external_id")
    if emails:
        _put_hashes(out, "email", [identity.hash_email(v) for v in emails], warnings)
    if phones:
        region = options.phone_region
        _put_hashes(out, "phone", [identity.hash_phone(v, region) for v in phones], warnings)
    if external_ids:
        lower = options.lowercase_external_id
        _put_hashes(out, "external_id",
                    [identity.hash_external_id(v, lower) for v in external_ids], warnings)
    for key in ("ttclid", "ttp", "user_agent", "locale"):
        value = user.get(key)
        if value:
            out[key] = value
    ip = user.get("ip")
    if ip:
        _add_ip(ip, out, warnings)
    if len(user) > len(out):  # cheap test first: unknown keys are rare
        for key in sorted(set(user) - _USER_FIELDS):
            warnings.append(FieldError(f"user.{key}", "unknown user field: not sent"))
    return out


def _put_hashes(out: dict[str, Any], key: str, results: list[identity.Hashed],
                warnings: list[FieldError]) -> None:
    """Keep each distinct hash; name each dropped value (`user.email.1`) in a warning."""
    if len(results) == 1 and results[0].value is not None:  # the usual case, kept short
        out[key] = [results[0].value]
        return
    hashes: list[str] = []
    for i, result in enumerate(results):
        if result.value is None:
            path = f"user.{key}" if len(results) == 1 else f"user.{key}.{i}"
            warnings.append(FieldError(path, result.problem or "dropped"))
        elif result.value not in hashes:
            hashes.append(result.value)
    if hashes:
        out[key] = hashes


def _add_ip(ip: str, out: dict[str, Any], warnings: list[FieldError]) -> None:
    normalised = normalise_ip(ip)
    if normalised is None:
        warnings.append(FieldError("user.ip", "not a valid IPv4 or IPv6 address; dropped"))
    else:
        out["ip"] = normalised


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
# Dotted-quad IPv4 without leading zeros: already its own canonical text.
_CANONICAL_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


@lru_cache(maxsize=16384)
def normalise_ip(ip: str) -> str | None:
    """The canonical text of an IPv4 or IPv6 address (cached: shops see the same IPs often)."""
    if _CANONICAL_IPV4.fullmatch(ip):
        return ip
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return None


# --- properties ----------------------------------------------------------------------------


# Properties the pipeline reads itself; any other key is a custom property, passed through.
_PROPERTY_FIELDS = frozenset(Properties.__annotations__)
_COPIED_PROPERTIES = ("value", "currency", "num_items", "order_id", "shop_id", "description")
_ITEM_TO_CONTENT = (("item_id", "content_id"), ("item_name", "content_name"),
                    ("item_category", "content_category"), ("item_brand", "brand"),
                    ("price", "price"), ("quantity", "quantity"))


def _properties(props: Properties, name: str, warnings: list[FieldError]) -> dict[str, Any]:
    out: dict[str, Any] = {k: v for k, v in props.items() if k not in _PROPERTY_FIELDS}
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


# --- destination filters -------------------------------------------------------------------


Processor = Callable[[Transformed], None]


@dataclass(frozen=True)
class ConsentFilter:
    """Drop events whose `consent` denies this destination's category."""

    category: str = "marketing"
    require: bool = False  # when true, events without a consent answer are dropped too

    def __call__(self, item: Transformed) -> None:
        consent = item.source.consent or {}
        answer = consent.get(self.category)
        if answer is None:
            if self.require:
                raise DropEvent("consent")
            return
        if answer is False or (isinstance(answer, str) and answer.lower() in _DENIED):
            raise DropEvent("consent")


_DENIED = frozenset({"denied", "false", "no", "0", "revoked"})


@dataclass(frozen=True)
class EventNameFilter:
    """Forward only allowed client event names, and never blocked ones."""

    allow: frozenset[str] = frozenset()
    block: frozenset[str] = frozenset()

    @classmethod
    def of(cls, allow: Iterable[str], block: Iterable[str]) -> EventNameFilter:
        return cls(frozenset(map(mapping.normalise_name, allow)),
                   frozenset(map(mapping.normalise_name, block)))

    def __call__(self, item: Transformed) -> None:
        name = mapping.normalise_name(item.source.event)
        if self.allow and name not in self.allow:
            raise DropEvent("event_name")
        if name in self.block:
            raise DropEvent("event_name")


@dataclass(frozen=True)
class SessionFilter:
    """During set-up, forward only the tester's own events (matched on a hashed field)."""

    field: str
    values: frozenset[str]

    def __call__(self, item: Transformed) -> None:
        found = _lookup(item.data, self.field)
        found_values = set(found) if isinstance(found, list) else {found}
        if not found_values & self.values:
            raise DropEvent("session")


def _lookup(data: dict[str, Any], path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


@dataclass
class Route:
    """One destination's processing: transform, then its filters in order."""

    options: TransformOptions = field(default_factory=TransformOptions)
    processors: Sequence[Processor] = ()

    def process(self, event: Event, *, now: float | None = None) -> Transformed:
        """Raise DropEvent when a filter drops the event, InvalidEvent when it is invalid."""
        if self.options.property_map:
            event = parse_event(
                event.model_dump(exclude_none=True, by_alias=True), self.options.property_map)
        item = to_tiktok(event, self.options, now=now)
        for processor in self.processors:
            processor(item)
        return item


def build_requests(
    items: Sequence[Transformed],
    pixel_id: str,
    *,
    test_event_code: str | None = None,
    partner_name: str | None = "tiktok-gateway",
) -> list[dict[str, Any]]:
    """2.0 request bodies: one per test code (never mixed with live), at most 1,000 events each."""
    groups: dict[str | None, list[dict[str, Any]]] = {}
    for item in items:
        groups.setdefault(item.test_event_code or test_event_code or None, []).append(item.data)
    requests = []
    for code, data in groups.items():
        for start in range(0, len(data), schema.MAX_EVENTS_PER_REQUEST):
            chunk = data[start:start + schema.MAX_EVENTS_PER_REQUEST]
            requests.append(schema.build_request(
                pixel_id, chunk, test_event_code=code, partner_name=partner_name))
    return requests
