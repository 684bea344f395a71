"""What TikTok would reject, and what it would accept but silently drop.

One implementation, used by `tiktok-gateway check`, by the sandbox as its validation,
and by the gateway's test view. Three kinds of finding per event:

* errors: TikTok rejects the whole request (code 40002 with the field path);
* dropped: TikTok answers code 0 but ignores the field (unhashed PII, wrong types);
* warnings: accepted and used, but probably not what the sender meant.
"""

from __future__ import annotations

import copy
import ipaddress
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import orjson
import pycountry

from ..exceptions import FieldError
from . import schema

KNOWN_EVENT_KEYS = frozenset(
    {"event", "event_time", "event_id", "user", "properties", "page", "app", "ad", "lead",
     "limited_data_use"}
)
KNOWN_REQUEST_KEYS = frozenset(
    {"event_source", "event_source_id", "test_event_code", "partner_name", "data"}
)
_HASHED_PATHS = tuple((key, f"user.{key}") for key in schema.HASHED_USER_FIELDS)
KNOWN_USER_KEYS = frozenset({*schema.HASHED_USER_FIELDS, *schema.PLAIN_USER_FIELDS,
                             *schema.APP_USER_FIELDS, *schema.UNCONFIRMED_USER_FIELDS})
ATT_STATUSES = frozenset({"AUTHORIZED", "DENIED", "NOT_DETERMINED", "RESTRICTED", "NOT_APPLICABLE"})
DEFAULT_MAX_AGE_SECONDS = 7 * 86400
MAX_FUTURE_SECONDS = 300


@dataclass(slots=True)
class EventVerdict:
    """The lint findings for one event of a request, and the event as TikTok would keep it."""

    index: int
    errors: list[FieldError] = field(default_factory=list)
    warnings: list[FieldError] = field(default_factory=list)
    dropped: list[FieldError] = field(default_factory=list)
    parsed: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "errors": [e.as_dict() for e in self.errors],
            "warnings": [e.as_dict() for e in self.warnings],
            "dropped": [e.as_dict() for e in self.dropped],
        }


@dataclass
class LintReport:
    """Findings for a whole request body."""

    request_errors: list[FieldError] = field(default_factory=list)
    request_warnings: list[FieldError] = field(default_factory=list)
    events: list[EventVerdict] = field(default_factory=list)
    kind: str = "event/track"

    @property
    def ok(self) -> bool:
        return not self.request_errors and all(v.ok for v in self.events)

    def first_error(self) -> FieldError | None:
        if self.request_errors:
            return self.request_errors[0]
        for verdict in self.events:
            if verdict.errors:
                return verdict.errors[0]
        return None

    def first_dropped(self) -> FieldError | None:
        return next((d for v in self.events for d in v.dropped), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "kind": self.kind,
            "errors": [e.as_dict() for e in self.request_errors],
            "warnings": [e.as_dict() for e in self.request_warnings],
            "events": [v.as_dict() for v in self.events],
        }


class _Collector:
    """Collects findings for one event under a path prefix such as `data.3`."""

    __slots__ = ("verdict", "prefix", "_copied")

    def __init__(self, verdict: EventVerdict, prefix: str) -> None:
        self.verdict = verdict
        self.prefix = prefix
        self._copied = False

    def _path(self, path: str) -> str:
        if not path:
            return self.prefix or "event"
        return f"{self.prefix}.{path}" if self.prefix else path

    def error(self, path: str, message: str) -> None:
        self.verdict.errors.append(FieldError(self._path(path), message))

    def warn(self, path: str, message: str) -> None:
        self.verdict.warnings.append(FieldError(self._path(path), message))

    def drop(self, path: str, message: str) -> None:
        """Record a dropped field and remove it from the parsed event."""
        self.verdict.dropped.append(FieldError(self._path(path), message))
        if not self._copied:  # the event as received stays as it was; most events drop nothing
            self.verdict.parsed = _copy(self.verdict.parsed)
            self._copied = True
        _remove_path(self.verdict.parsed, path)


def _copy(event: dict[str, Any]) -> dict[str, Any]:
    """A deep copy; an orjson round trip is several times faster than copy.deepcopy."""
    try:
        copied: dict[str, Any] = orjson.loads(orjson.dumps(event))
        return copied
    except (orjson.JSONEncodeError, TypeError):  # e.g. integers beyond 64 bits
        return copy.deepcopy(event)


def _remove_path(obj: Any, path: str) -> None:
    """Remove `a.b.2` from nested dicts and lists; a removed list item becomes None."""
    *parents, last = path.split(".")
    for part in parents:
        obj = obj[int(part)] if isinstance(obj, list) else obj.get(part) if obj else None
        if obj is None:
            return
    if isinstance(obj, list):
        obj[int(last)] = None
    elif isinstance(obj, dict):
        obj.pop(last, None)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _one_of(value: Any, allowed: frozenset[str]) -> bool:
    return isinstance(value, str) and value in allowed


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_currency(code: Any) -> bool:
    """Whether `code` is an upper-case ISO 4217 code from pycountry's maintained list."""
    return isinstance(code, str) and code.isupper() and _known_currency(code)


@lru_cache(maxsize=512)
def _known_currency(code: str) -> bool:
    return pycountry.currencies.get(alpha_3=code) is not None


def suggest_event_name(name: str) -> str | None:
    """The standard name `name` differs from only by case (TikTok's names are case-sensitive)."""
    lowered = name.lower()
    return next((s for s in schema.STANDARD_EVENTS if s.lower() == lowered), None)


# --- request level -------------------------------------------------------------------------


def lint_request(
    body: Any, *, now: float | None = None, max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS
) -> LintReport:
    """Lint an Events API 2.0 (`/event/track/`) request body."""
    report = LintReport()
    if not isinstance(body, dict):
        report.request_errors.append(FieldError("body", "must be a JSON object"))
        return report
    _lint_request_fields(body, report)
    data = body.get("data")
    if not isinstance(data, list):
        report.request_errors.append(FieldError("data", "required: a list of 1 to 1000 events"))
        return report
    if not data:
        report.request_errors.append(FieldError("data", "must hold at least one event"))
    if len(data) > schema.MAX_EVENTS_PER_REQUEST:
        report.request_errors.append(
            FieldError("data", f"{len(data)} events: at most 1000 per request, none accepted")
        )
    now = time.time() if now is None else now
    source = body.get("event_source", "web")
    for index, event in enumerate(data):
        report.events.append(lint_event(event, index, now, max_age_seconds, source))
    return report


def _lint_request_fields(body: dict[str, Any], report: LintReport) -> None:
    errors, warnings = report.request_errors, report.request_warnings
    source = body.get("event_source")
    if source is None:
        errors.append(FieldError("event_source", "required: one of app, crm, offline, web"))
    elif not isinstance(source, str) or source not in schema.EVENT_SOURCES:
        errors.append(FieldError("event_source", f"{source!r} is not one of app, crm, offline, web"))
    source_id = body.get("event_source_id")
    if not isinstance(source_id, str) or not source_id:
        errors.append(FieldError("event_source_id", "required: the pixel code or event set id"))
    elif source == "web" and not schema.PIXEL_CODE.match(source_id):
        warnings.append(
            FieldError("event_source_id", "pixel codes are 20 upper-case letters and digits")
        )
    for key in ("test_event_code", "partner_name"):
        if key in body and not isinstance(body[key], str):
            errors.append(FieldError(key, "Not a valid string"))
    for key in sorted(set(body) - KNOWN_REQUEST_KEYS):
        warnings.append(FieldError(key, "unknown field, ignored by TikTok"))


# --- one event -----------------------------------------------------------------------------


def lint_event(
    event: Any,
    index: int,
    now: float,
    max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS,
    source: str = "web",
    prefix: str | None = None,
) -> EventVerdict:
    """Lint one `data[]` item; `prefix` defaults to `data.<index>`."""
    verdict = EventVerdict(index=index)
    out = _Collector(verdict, f"data.{index}" if prefix is None else prefix)
    if not isinstance(event, dict):
        out.error("", "must be a JSON object")
        return verdict
    verdict.parsed = event  # copied by the first drop, if any
    _lint_name(event, out, source)
    _lint_time(event, out, now, max_age_seconds)
    _lint_event_id(event, out, source)
    _lint_object(event, "user", out, _lint_user)
    _lint_object(event, "properties", out, _lint_properties)
    _lint_object(event, "page", out, _lint_page)
    if "limited_data_use" in event and not isinstance(event["limited_data_use"], bool):
        out.drop("limited_data_use", "must be true or false")
    if not event.keys() <= KNOWN_EVENT_KEYS:  # the test allocates nothing; unknown keys are rare
        for key in sorted(event.keys() - KNOWN_EVENT_KEYS):
            out.warn(key, "unknown field, ignored by TikTok")
    _lint_value_advice(event, out)
    return verdict


def _lint_object(event: dict[str, Any], key: str, out: _Collector, check: Any) -> None:
    if key not in event:
        return
    if not isinstance(event[key], dict):
        out.drop(key, "must be a JSON object")
        return
    check(event[key], out)


def _lint_name(event: dict[str, Any], out: _Collector, source: str) -> None:
    name = event.get("event")
    if name is None:
        out.error("event", "required: a standard event name such as CompletePayment")
    elif not isinstance(name, str) or not name:
        out.error("event", "Not a valid string")
    elif name not in schema.STANDARD_EVENTS and name not in schema.APP_STANDARD_EVENTS:
        suggestion = suggest_event_name(name)
        if suggestion:
            out.warn("event", f"{name!r} is a custom event: names are case-sensitive, "
                              f"did you mean {suggestion!r}?")
        elif source == "offline":
            out.warn("event", f"{name!r} is not a standard event; offline events must be standard")
        else:
            out.warn("event", f"{name!r} is a custom event: reported, not used for optimisation")


def _lint_time(event: dict[str, Any], out: _Collector, now: float, max_age: int) -> None:
    value = event.get("event_time")
    if value is None:
        out.error("event_time", "required: Unix time in seconds")
        return
    if not _is_int(value):
        out.error("event_time", "Not a valid integer: Unix time in seconds")
        return
    if value > 100_000_000_000:
        out.error("event_time", "looks like milliseconds: TikTok expects Unix seconds")
    elif value < now - max_age:
        days = (now - value) / 86400
        out.warn("event_time", f"{days:.1f} days old: TikTok may not attribute old events")
    elif value > now + MAX_FUTURE_SECONDS:
        out.warn("event_time", f"{value - now:.0f} s in the future: check the sender's clock")


def _lint_event_id(event: dict[str, Any], out: _Collector, source: str) -> None:
    if "event_id" not in event:
        if source == "web":
            out.warn("event_id", "missing: TikTok cannot deduplicate this event against the pixel")
        return
    if not isinstance(event["event_id"], str):
        out.error("event_id", "Not a valid string")
    elif not event["event_id"]:
        out.warn("event_id", "empty: TikTok cannot deduplicate this event")


# --- user ----------------------------------------------------------------------------------


def _lint_user(user: dict[str, Any], out: _Collector) -> None:
    for key, path in _HASHED_PATHS:
        if key in user:
            _lint_hashed(user[key], path, out)
    for key in ("ttclid", "ttp", "user_agent", "locale", "idfv"):
        if key in user and not isinstance(user[key], str):
            out.drop(f"user.{key}", "Not a valid string")
    for key in ("ttclid", "ttp"):
        value = user.get(key)
        if isinstance(value, str) and schema.SHA256_HEX_ANY_CASE.match(value):
            out.warn(f"user.{key}", "looks hashed: send it exactly as read, never hashed")
    if "ip" in user:
        _lint_ip(user["ip"], out)
    if "att_status" in user and not _one_of(user["att_status"], ATT_STATUSES):
        out.drop("user.att_status", "must be one of " + ", ".join(sorted(ATT_STATUSES)))
    if not user.keys().isdisjoint(schema.UNCONFIRMED_USER_FIELDS):
        for key in schema.UNCONFIRMED_USER_FIELDS:
            if key in user:
                out.warn(f"user.{key}", "not in TikTok's Events API 2.0 reference; may be ignored")
    if not user.keys() <= KNOWN_USER_KEYS:
        for key in sorted(user.keys() - KNOWN_USER_KEYS):
            out.drop(f"user.{key}", "unknown user field")


def _lint_hashed(value: Any, path: str, out: _Collector) -> None:
    if isinstance(value, list):
        for i, item in enumerate(value):
            if not _well_hashed(item):  # the path is built only for a finding
                _lint_hashed_one(item, f"{path}.{i}", out)
    elif not _well_hashed(value):
        _lint_hashed_one(value, path, out)


def _well_hashed(value: Any) -> bool:
    """What TikTok keeps as it is: lower-case SHA-256 hex, or empty."""
    return isinstance(value, str) and (value == "" or schema.SHA256_HEX.match(value) is not None)


def _lint_hashed_one(value: Any, path: str, out: _Collector) -> None:
    """The finding for a value that is not `_well_hashed`."""
    if not isinstance(value, str):
        out.drop(path, "Not a valid string")
    elif schema.SHA256_HEX_ANY_CASE.match(value):
        out.drop(path, "SHA-256 must be lower-case hex; upper-case hex does not match")
    else:
        kind = "an email" if "@" in value else "a phone number" if _looks_phone(value) else "raw"
        out.drop(path, f"not SHA-256 hashed (looks like {kind}): TikTok drops unhashed values")


def _looks_phone(value: str) -> bool:
    digits = sum(ch.isdigit() for ch in value)
    return digits >= 6 and all(ch.isdigit() or ch in "+-() ." for ch in value)


def _lint_ip(value: Any, out: _Collector) -> None:
    if not isinstance(value, str):
        out.drop("user.ip", "Not a valid string")
        return
    public = _is_public_ip(value)
    if public is None:
        out.drop("user.ip", f"{value!r} is not a valid IPv4 or IPv6 address")
    elif not public:
        out.warn("user.ip", "not a public address: TikTok cannot use it for matching")


@lru_cache(maxsize=16384)
def _is_public_ip(value: str) -> bool | None:
    """Whether an address is public; None when it is not an address at all."""
    try:
        return ipaddress.ip_address(value).is_global
    except ValueError:
        return None


# --- properties and page -------------------------------------------------------------------


def _lint_properties(props: dict[str, Any], out: _Collector) -> None:
    _lint_value(props, out)
    if "currency" in props and not is_currency(props["currency"]):
        out.drop("properties.currency", f"{props['currency']!r} is not an upper-case ISO 4217 code")
    if "content_type" in props and not _one_of(props["content_type"], schema.CONTENT_TYPES):
        out.drop("properties.content_type", "must be product or product_group")
    for key in ("order_id", "shop_id"):
        if key in props and not isinstance(props[key], str):
            out.error(f"properties.{key}", "Not a valid string")
    for key in ("search_string", "query", "description"):
        if key in props and not isinstance(props[key], str):
            out.drop(f"properties.{key}", "Not a valid string")
    if "num_items" in props and not _is_int(props["num_items"]):
        out.drop("properties.num_items", "Not a valid integer")
    _lint_content_ids(props, out)
    if "contents" in props:
        _lint_contents(props["contents"], out)


def _lint_value(props: dict[str, Any], out: _Collector) -> None:
    if "value" not in props:
        return
    value = props["value"]
    if not _is_number(value):
        out.drop("properties.value", "must be a number, without symbols or quotes")
    elif value < 0:
        out.drop("properties.value", "must not be negative")


def _lint_content_ids(props: dict[str, Any], out: _Collector) -> None:
    ids = props.get("content_ids")
    if ids is None:
        return
    if not isinstance(ids, list):
        out.drop("properties.content_ids", "must be a list of strings")
        return
    for i, item in enumerate(ids):
        if not isinstance(item, str):
            out.error(f"properties.content_ids.{i}", "Not a valid string")


def _lint_contents(contents: Any, out: _Collector) -> None:
    if not isinstance(contents, list):
        out.drop("properties.contents", "must be a list of objects")
        return
    for i, item in enumerate(contents):
        path = f"properties.contents.{i}"
        if not isinstance(item, dict):
            out.drop(path, "must be an object")
            continue
        if "content_id" in item and not isinstance(item["content_id"], str):
            out.error(f"{path}.content_id", "Not a valid string")
        for key in ("content_name", "content_category", "brand"):
            if key in item and not isinstance(item[key], str):
                out.drop(f"{path}.{key}", "Not a valid string")
        if "price" in item and not _is_number(item["price"]):
            out.drop(f"{path}.price", "must be a number")
        if "quantity" in item and not _is_int(item["quantity"]):
            out.drop(f"{path}.quantity", "must be an integer")


def _lint_page(page: dict[str, Any], out: _Collector) -> None:
    for key in ("url", "referrer"):
        value = page.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            out.drop(f"page.{key}", "Not a valid string")
        elif not value.startswith(("http://", "https://")):
            out.warn(f"page.{key}", "should be a full http(s) URL")


def _lint_value_advice(event: dict[str, Any], out: _Collector) -> None:
    props = event.get("properties")
    props = props if isinstance(props, dict) else {}
    kept = out.verdict.parsed.get("properties") or {}
    has_value, has_currency = "value" in kept, "currency" in kept
    if has_value and not has_currency:
        out.warn("properties.currency", "value without currency: TikTok cannot use the value")
    elif has_currency and not has_value and "value" not in props:
        out.warn("properties.value", "currency without value")
    elif _one_of(event.get("event"), schema.VALUE_EVENTS) and not has_value and "value" not in props:
        out.warn("properties.value", "recommended for this event: value and currency")
