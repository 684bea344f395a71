"""From an inbound event to TikTok's 2.0 `data[]` item, per destination.

A `Route` is one destination's processing: check the event's time, run its filters
(consent, event names, set-up session: small callables that raise `DropEvent`, as
structlog's processors do) on the parsed event, before any hashing work; then map the
name and parameters (`mapping`) and normalise and hash the customer data (`identity`):
raw personal data ends there. `transform()` is the same without filters, for one raw event.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from . import identity, mapping
from .events import Event, parse_event
from .exceptions import DropEvent, FieldError, InvalidEvent
from .tiktok import schema

if TYPE_CHECKING:  # the settings layer (pydantic models, the stores) is not needed to transform
    from .config import DeliverySettings, DestinationSettings


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
    event = parse_event(mapping.rename_properties(raw, options.property_map))
    return to_tiktok(event, options, now=now)


def to_tiktok(event: Event, options: TransformOptions, *, now: float | None = None) -> Transformed:
    """The 2.0 `data[]` item for a parsed event."""
    _check_time(event.event_time, time.time() if now is None else now, options)
    return _map_and_hash(event, options)


def _map_and_hash(event: Event, options: TransformOptions) -> Transformed:
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
    user = identity.hash_user(event.user, warnings, phone_region=options.phone_region,
                              lowercase_external_id=options.lowercase_external_id)
    if "ttclid" not in user and event.page:  # the landing URL carries TikTok's click id
        ttclid = mapping.url_parameter(event.page.get("url"), "ttclid")
        if ttclid:
            user["ttclid"] = ttclid
    if user:
        data["user"] = user
    data["properties"] = mapping.tiktok_properties(event.properties, name, warnings)
    if event.page is not None:
        data["page"] = {k: identity.scrub_url(str(v), f"page.{k}", warnings)
                        for k, v in event.page.items() if v is not None}
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


# --- destination filters: they see the parsed event, before any hashing -----------------


Processor = Callable[[Event], None]


@dataclass(frozen=True)
class ConsentFilter:
    """Drop events whose `consent` denies this destination's category."""

    category: str = "marketing"
    require: bool = False  # when true, events without a consent answer are dropped too

    def __call__(self, event: Event) -> None:
        answer = (event.consent or {}).get(self.category)
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

    def __call__(self, event: Event) -> None:
        name = mapping.normalise_name(event.event)
        if self.allow and name not in self.allow:
            raise DropEvent("event_name")
        if name in self.block:
            raise DropEvent("event_name")


@dataclass(frozen=True)
class SessionFilter:
    """During set-up, forward only the tester's own events, matched on one field's hash
    (`values` are hashes for the hashed user fields, as written in the config otherwise)."""

    field: str
    values: frozenset[str]
    phone_region: str | None = None
    lowercase_external_id: bool = False

    @classmethod
    def of(cls, path: str, raw_values: Iterable[str], *, phone_region: str | None = None,
           lowercase_external_id: bool = False) -> SessionFilter:
        """From values written raw in the config: hashed like the events' field."""
        probe = cls(path, frozenset(), phone_region, lowercase_external_id)
        return cls(path, frozenset(probe.key(v) or v for v in raw_values), phone_region,
                   lowercase_external_id)

    def key(self, value: str) -> str | None:
        """What a value of the field is matched as: its hash for email, phone, external_id."""
        if self.field == "user.email":
            return identity.hash_email(value).value
        if self.field == "user.phone":
            return identity.hash_phone(value, self.phone_region).value
        if self.field == "user.external_id":
            return identity.hash_external_id(value, self.lowercase_external_id).value
        return value

    def __call__(self, event: Event) -> None:
        found = _lookup(event, self.field)
        found_values = found if isinstance(found, list) else [found]
        if not any(isinstance(v, str) and self.key(v) in self.values for v in found_values):
            raise DropEvent("session")


def _lookup(event: Event, path: str) -> Any:
    first, *rest = path.split(".")
    value: Any = getattr(event, first, None)
    for part in rest:
        value = value.get(part) if isinstance(value, dict) else None
    return value


@dataclass
class Route:
    """One destination's processing: time check, its filters in order, then map and hash."""

    options: TransformOptions = field(default_factory=TransformOptions)
    processors: Sequence[Processor] = ()

    def parse(self, raw: Any) -> Event:
        """The raw event as this destination reads it (its property map applied)."""
        if self.options.property_map:
            raw = mapping.rename_properties(raw, self.options.property_map)
        return parse_event(raw)

    def process(self, event: Event, *, now: float | None = None) -> Transformed:
        """Raise DropEvent when a filter drops the event, InvalidEvent when it is invalid."""
        _check_time(event.event_time, time.time() if now is None else now, self.options)
        if mapping.normalise_name(event.event) in mapping.NEVER_SENT:
            raise DropEvent("not a TikTok event (refund or cancellation)")
        for processor in self.processors:
            processor(event)
        return _map_and_hash(event, self.options)


def route_for(dest: DestinationSettings, delivery: DeliverySettings) -> Route:
    """A destination's transform options and filters, from its settings."""
    names = mapping.NameMapping(dest.purchase_event, dest.lead_event, dict(dest.event_names))
    options = TransformOptions(
        names=names, phone_region=dest.phone_region,
        lowercase_external_id=dest.lowercase_external_id, property_map=dict(dest.property_map),
        max_age_seconds=int(delivery.max_event_age_days * 86400))
    filters = dest.filters
    processors: list[Processor] = [ConsentFilter(filters.consent_category,
                                                 filters.require_consent)]
    if filters.allow_events or filters.block_events:
        processors.append(EventNameFilter.of(filters.allow_events, filters.block_events))
    if filters.session_values:
        processors.append(SessionFilter.of(
            filters.session_field, filters.session_values, phone_region=dest.phone_region,
            lowercase_external_id=dest.lowercase_external_id))
    return Route(options, processors)


@dataclass(slots=True)
class PackedRequest:
    """The events of one 2.0 request: their items, and each item's JSON."""

    test_event_code: str | None
    data: list[dict[str, Any]] = field(default_factory=list)
    encoded: list[bytes] = field(default_factory=list)
    used: int = 0  # bytes of the `data` list's contents, commas included


class RequestPacker:
    """Packs transformed events into 2.0 requests as they come, so that a caller can write
    each request out once it is full rather than hold every event first: one group per test
    code (test and live never mix), at most 1,000 events and `max_request_bytes` a request."""

    def __init__(self, pixel_id: str, *, test_event_code: str | None = None,
                 partner_name: str | None = "tiktok-gateway", event_source: str = "web",
                 max_request_bytes: int = schema.MAX_REQUEST_BYTES) -> None:
        self.pixel_id, self.test_event_code = pixel_id, test_event_code
        self.partner_name, self.event_source = partner_name, event_source
        self.max_request_bytes = max_request_bytes
        self._open: dict[str | None, PackedRequest] = {}
        self._budgets: dict[str | None, int] = {}

    def add(self, item: Transformed) -> PackedRequest | None:
        """Take one event; the request it closed, when it did not fit in the open one."""
        code = item.test_event_code or self.test_event_code or None
        pending = self._open.get(code)
        if pending is None:
            pending = self._open[code] = PackedRequest(code)
            self._budgets[code] = self.max_request_bytes - schema.envelope_bytes(
                self.pixel_id, test_event_code=code, event_source=self.event_source,
                partner_name=self.partner_name)
        encoded = orjson.dumps(item.data)
        full = None
        if pending.encoded and (len(pending.encoded) == schema.MAX_EVENTS_PER_REQUEST
                                or pending.used + 1 + len(encoded) > self._budgets[code]):
            full, pending = pending, PackedRequest(code)
            self._open[code] = pending
        pending.used += len(encoded) + bool(pending.encoded)
        pending.data.append(item.data)
        pending.encoded.append(encoded)
        return full

    def finish(self) -> list[PackedRequest]:
        """The requests still open, in the order their test codes first came."""
        rest = [r for r in self._open.values() if r.encoded]
        self._open.clear()
        return rest

    def body(self, packed: PackedRequest) -> dict[str, Any]:
        return schema.build_request(self.pixel_id, packed.data,
                                    test_event_code=packed.test_event_code,
                                    event_source=self.event_source,
                                    partner_name=self.partner_name)

    def body_bytes(self, packed: PackedRequest) -> bytes:
        """The request's JSON, spliced from its events' JSON (no second serialisation)."""
        return schema.splice_request(self.pixel_id, b",".join(packed.encoded),
                                     test_event_code=packed.test_event_code,
                                     event_source=self.event_source,
                                     partner_name=self.partner_name)


def build_requests(
    items: Iterable[Transformed],
    pixel_id: str,
    *,
    test_event_code: str | None = None,
    partner_name: str | None = "tiktok-gateway",
    event_source: str = "web",
    max_request_bytes: int = schema.MAX_REQUEST_BYTES,
) -> list[dict[str, Any]]:
    """2.0 request bodies: one group per test code (never mixed with live), at most 1,000
    events and `max_request_bytes` each."""
    packer = RequestPacker(pixel_id, test_event_code=test_event_code,
                           partner_name=partner_name, event_source=event_source,
                           max_request_bytes=max_request_bytes)
    full = [packed for packed in map(packer.add, items) if packed is not None]
    return [packer.body(packed) for packed in full + packer.finish()]
