"""GA4 Measurement Protocol bodies to inbound events.

Sites already sending GA4 events server-side (or a tag manager's GA4 client) can point
at `/mp/collect`. `user_id` becomes external_id; `transaction_id` becomes order_id, so a
purchase gets the same deterministic event_id as the browser snippet and the webhooks.
GA4's consent signals are honoured: `ad_user_data` DENIED sends the event with no user
data at all, `ad_personalization` DENIED sets TikTok's `limited_data_use`.
"""

from __future__ import annotations

from typing import Any

from ..exceptions import FieldError, InvalidEvent

# GA4 parameter -> our property name.
PROPERTY_PARAMS = {
    "value": "value", "currency": "currency", "transaction_id": "order_id",
    "search_term": "search_string", "items": "items", "affiliation": "shop_id",
}


def ga4_events(body: Any) -> list[dict[str, Any]]:
    """The inbound events of one Measurement Protocol request."""
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        raise InvalidEvent([FieldError("events", "a GA4 Measurement Protocol body needs an "
                                                 "events list")])
    consent = body.get("consent") if isinstance(body.get("consent"), dict) else {}
    assert isinstance(consent, dict)
    with_user = not _denied(consent.get("ad_user_data"))
    user = _user(body) if with_user else {}
    default_time = body.get("timestamp_micros")
    events = [_event(item, user, default_time, with_user) for item in body["events"]]
    if _denied(consent.get("ad_personalization")):
        for event in events:
            event["limited_data_use"] = True
    return events


def _denied(signal: Any) -> bool:
    return isinstance(signal, str) and signal.upper() == "DENIED"


def _user(body: dict[str, Any]) -> dict[str, Any]:
    user: dict[str, Any] = {}
    if body.get("user_id"):
        user["external_id"] = str(body["user_id"])
    data = body.get("user_data") if isinstance(body.get("user_data"), dict) else {}
    assert isinstance(data, dict)
    # GA4 carries already-hashed values; the gateway passes SHA-256 through unchanged.
    for ours, theirs in (("email", "sha256_email_address"), ("phone", "sha256_phone_number")):
        if data.get(theirs):
            user[ours] = data[theirs]
    if body.get("ip_override"):
        user["ip"] = body["ip_override"]
    # GA4 carries the user agent at the top level; its `device` object has none.
    if isinstance(body.get("user_agent"), str) and body["user_agent"]:
        user["user_agent"] = body["user_agent"]
    return user


def _event(item: Any, user: dict[str, Any], default_time: Any, with_user: bool) -> dict[str, Any]:
    if not isinstance(item, dict):
        return {"event": None}  # rejected by the pipeline with a clear message
    params = item.get("params") if isinstance(item.get("params"), dict) else {}
    assert isinstance(params, dict)
    props = {ours: params[theirs] for theirs, ours in PROPERTY_PARAMS.items() if theirs in params}
    event: dict[str, Any] = {"event": item.get("name"), "user": dict(user), "properties": props}
    micros = item.get("timestamp_micros") or default_time
    if isinstance(micros, int | str) and str(micros).isdigit():
        event["event_time"] = int(micros) // 1000  # milliseconds; the schema converts
    if params.get("event_id"):
        event["event_id"] = params["event_id"]
    page = {k: params[p] for k, p in (("url", "page_location"), ("referrer", "page_referrer"))
            if params.get(p)}
    if page:
        event["page"] = page
    for key in ("ttclid", "ttp"):
        if params.get(key) and with_user:
            event["user"][key] = params[key]
    return event
