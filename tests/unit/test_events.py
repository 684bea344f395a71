"""Parsing the inbound event: what shops really send, and clear errors."""

from __future__ import annotations

import time

import pytest

from tiktok_gateway import InvalidEvent, parse_event


def fields(exc: pytest.ExceptionInfo[InvalidEvent]) -> list[str]:
    return [e.field for e in exc.value.errors]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (1717000000, 1717000000),
        (1717000000123, 1717000000),
        ("1717000000", 1717000000),
        ("2024-05-29T16:26:40Z", 1717000000),
        ("2024-05-29T18:26:40+02:00", 1717000000),
    ],
)
def test_event_time_forms(given: object, expected: int) -> None:
    """Seconds, milliseconds and ISO 8601 with an offset all become integer seconds."""
    assert parse_event({"event": "purchase", "event_time": given}).event_time == expected


def test_event_time_defaults_to_now() -> None:
    """Without event_time the event is timed on arrival."""
    assert abs(parse_event({"event": "purchase"}).event_time - time.time()) < 5


def test_iso_time_without_offset_is_an_error() -> None:
    """A naive ISO time is ambiguous, so it is refused with a hint."""
    with pytest.raises(InvalidEvent) as exc:
        parse_event({"event": "purchase", "event_time": "2024-05-29T16:26:40"})
    assert fields(exc) == ["event_time"]
    assert "offset" in exc.value.errors[0].message


def test_numeric_ids_become_strings() -> None:
    """TikTok rejects numeric ids, so numbers are converted."""
    event = parse_event({"event": "purchase", "event_id": 42,
                         "properties": {"order_id": 100045, "contents": [{"content_id": 7}]}})
    assert event.event_id == "42"
    assert event.properties.get("order_id") == "100045"
    contents = event.properties.get("contents")
    assert contents and contents[0].get("content_id") == "7"


def test_currency_is_case_insensitive_in_and_upper_case_out() -> None:
    """Currencies are checked against ISO 4217 and upper-cased."""
    assert parse_event({"event": "purchase", "properties": {"currency": "eur"}}
                       ).properties.get("currency") == "EUR"


def test_amount_strings_are_numbers() -> None:
    """A value sent as "1,046.50" is the number 1046.5."""
    assert parse_event({"event": "purchase", "properties": {"value": "1,046.50"}}
                       ).properties.get("value") == 1046.5


def test_every_bad_field_is_named() -> None:
    """Each invalid field is reported with its path."""
    with pytest.raises(InvalidEvent) as exc:
        parse_event({"event": "", "properties": {"currency": "DOLLARS", "value": -3,
                                                 "items": [{"price": "free"}]}})
    assert set(fields(exc)) == {"event", "properties.currency", "properties.value",
                                "properties.items.0.price"}


def test_missing_event_name_is_an_error() -> None:
    """The event name is the one required field."""
    with pytest.raises(InvalidEvent) as exc:
        parse_event({"properties": {}})
    assert fields(exc) == ["event"]


def test_single_string_user_fields_become_lists() -> None:
    """email, phone and external_id accept one string or a list."""
    event = parse_event({"event": "purchase", "user": {"email": "a@b.co", "phone": ["+12133734253"]}})
    assert event.user.get("email") == ["a@b.co"]
    assert event.user.get("phone") == ["+12133734253"]


def test_not_an_object_is_an_error() -> None:
    """A JSON string or number is not an event."""
    with pytest.raises(InvalidEvent):
        parse_event("purchase")


@pytest.mark.parametrize("path", ["event", "event_id", "test_event_code", "properties.order_id"])
def test_nul_characters_in_stored_ids_are_refused(path: str) -> None:
    """Ids kept as database text may not hold NUL (PostgreSQL cannot): a named field error."""
    raw: dict[str, object] = {"event": "purchase", "properties": {}}
    *parent, key = path.split(".")
    target = raw["properties"] if parent else raw
    target[key] = "order\x00100"  # type: ignore[index]
    with pytest.raises(InvalidEvent) as exc:
        parse_event(raw)
    assert [(e.field, e.message) for e in exc.value.errors] == [
        (path, "must not contain a NUL character (\\u0000)")]
