"""From an inbound event to TikTok's 2.0 item, and the destination filters."""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tiktok_gateway import DropEvent, InvalidEvent, TransformOptions, build_requests, transform
from tiktok_gateway.events import parse_event
from tiktok_gateway.identity import is_public_ip, normalise_ip, sha256_hex
from tiktok_gateway.pipeline import ConsentFilter, EventNameFilter, Route, SessionFilter
from tiktok_gateway.tiktok.lint import lint_request

Factory = Callable[..., dict[str, Any]]
OPTIONS = TransformOptions()


def test_purchase_becomes_a_complete_tiktok_item(event_factory: Factory) -> None:
    """Name mapped, ids derived, PII hashed, GA4 items turned into contents."""
    item = transform(event_factory(), OPTIONS)
    data = item.data
    assert data["event"] == "CompletePayment"
    assert data["event_id"] == "100045_CompletePayment"
    assert data["user"]["email"] == [sha256_hex("alice.shopper@example.com")]
    assert data["user"]["phone"] == [sha256_hex("+12133734253")]
    assert data["user"]["external_id"] == [sha256_hex("customer-1001")]
    assert data["user"]["ttp"] == "2F7h37YkS1j57AYSKTI7IHhJPYH"
    props = data["properties"]
    assert props["contents"][0] == {"content_id": "1077218", "content_name": "socks",
                                    "price": 8.0, "quantity": 2}
    assert props["content_ids"] == ["1077218", "1197218"]
    assert props["content_type"] == "product"
    assert (props["value"], props["currency"]) == (46, "USD")
    assert item.warnings == []


def test_output_passes_tiktok_lint(event_factory: Factory) -> None:
    """What the transform produces is what TikTok accepts, with nothing dropped."""
    body = build_requests([transform(event_factory(), OPTIONS)], "C0EXAMPLE0PIXEL00001")[0]
    report = lint_request(body)
    assert report.ok
    assert not report.events[0].dropped


def test_no_raw_personal_data_in_output(event_factory: Factory) -> None:
    """Neither the email nor the phone digits appear anywhere in the request."""
    text = json.dumps(transform(event_factory(), OPTIONS).data)
    assert "alice" not in text.lower()
    # The whole subscriber number: a shorter run of digits can occur by chance in
    # event_time, which changes with the clock.
    assert "3734253" not in text and "373-4253" not in text


def test_random_event_id_warns(event_factory: Factory) -> None:
    """Without event_id or order_id, a random id is used and the sender is told why it matters."""
    item = transform(event_factory(properties={"value": 1, "currency": "USD"}), OPTIONS)
    assert len(item.event_id) == 32
    assert any(w.field == "event_id" and "deduplicate" in w.message for w in item.warnings)


def test_custom_event_warns(event_factory: Factory) -> None:
    """An unknown event name passes through as custom, with a warning."""
    item = transform(event_factory(event="newsletter_popup"), OPTIONS)
    assert item.name == "newsletter_popup"
    assert any("custom event" in w.message for w in item.warnings)


def test_old_and_future_events_are_refused(event_factory: Factory) -> None:
    """Events older than the age limit or too far in the future are errors on event_time."""
    for when in (time.time() - 8 * 86400, time.time() + 3600):
        with pytest.raises(InvalidEvent) as exc:
            transform(event_factory(event_time=int(when)), OPTIONS)
        assert exc.value.errors[0].field == "event_time"


def test_bad_user_fields_are_dropped_with_warnings(event_factory: Factory) -> None:
    """Invalid email, phone and IP are dropped, never sent, and each is named."""
    item = transform(event_factory(user={"email": ["ok@example.com", "broken"],
                                         "phone": "12", "ip": "999.1.1.1"}), OPTIONS)
    assert item.data["user"] == {"email": [sha256_hex("ok@example.com")]}
    assert {w.field for w in item.warnings} >= {"user.email.1", "user.phone", "user.ip"}


def test_value_without_currency_warns(event_factory: Factory) -> None:
    """TikTok cannot use a value without a currency, so the sender is told."""
    item = transform(event_factory(properties={"order_id": "1", "value": 5}), OPTIONS)
    assert any(w.field == "properties.currency" for w in item.warnings)


def test_search_sets_both_names(event_factory: Factory) -> None:
    """A search term is sent as search_string (2.0) and query (legacy)."""
    item = transform({"event": "search", "properties": {"query": "red socks"}}, OPTIONS)
    assert item.data["properties"]["search_string"] == "red socks"
    assert item.data["properties"]["query"] == "red socks"


def test_requests_never_mix_test_and_live(event_factory: Factory) -> None:
    """Test events go in their own request; each request holds at most 1,000 events."""
    live = [transform(event_factory(properties={"order_id": str(i)}), OPTIONS) for i in range(1001)]
    test = [transform(event_factory(test_event_code="TEST1"), OPTIONS)]
    requests = build_requests(live + test, "C0EXAMPLE0PIXEL00001")
    assert [len(r["data"]) for r in requests] == [1000, 1, 1]
    assert [r.get("test_event_code") for r in requests] == [None, None, "TEST1"]


def test_consent_filter() -> None:
    """Denied consent drops the event; a missing answer passes unless consent is required."""
    item = lambda consent: parse_event({"event": "purchase", "consent": consent,  # noqa: E731
                                        "event_id": "e1"})
    with pytest.raises(DropEvent):
        ConsentFilter()(item({"marketing": False}))
    with pytest.raises(DropEvent):
        ConsentFilter()(item({"marketing": "denied"}))
    ConsentFilter()(item({"marketing": "granted"}))
    ConsentFilter()(item(None))
    with pytest.raises(DropEvent):
        ConsentFilter(require=True)(item(None))


def test_event_name_filter() -> None:
    """Allowed and blocked lists use client-side names, normalised."""
    item = parse_event({"event": "Add To Cart", "event_id": "e1"})
    EventNameFilter.of(["add_to_cart"], [])(item)
    with pytest.raises(DropEvent):
        EventNameFilter.of(["purchase"], [])(item)
    with pytest.raises(DropEvent):
        EventNameFilter.of([], ["add-to-cart"])(item)


def test_session_filter_matches_hashed_values(event_factory: Factory) -> None:
    """During set-up only the tester's events pass, matched on the hashed external_id."""
    mine = SessionFilter("user.external_id", frozenset({sha256_hex("customer-1001")}))
    mine(parse_event(event_factory()))
    with pytest.raises(DropEvent):
        mine(parse_event(event_factory(user={"external_id": "someone-else"})))


def test_route_applies_property_map(event_factory: Factory) -> None:
    """A destination's property map renames the shop's keys before parsing."""
    route = Route(TransformOptions(property_map={"total": "value", "cur": "currency"}))
    event = route.parse({"event": "purchase", "event_id": "x",
                         "properties": {"total": "12.5", "cur": "eur"}})
    props = route.process(event).data["properties"]
    assert (props["value"], props["currency"]) == (12.5, "EUR")


@given(st.from_regex(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}", fullmatch=True)
       | st.ip_addresses().map(str))
def test_ip_fast_path_gives_the_standard_librarys_answer(text: str) -> None:
    """Dotted quads skip ipaddress when already canonical; leading zeros and 256 still fail."""
    normalise_ip.cache_clear()
    try:
        expected: str | None = str(ipaddress.ip_address(text))
    except ValueError:
        expected = None
    assert normalise_ip(text) == expected


def test_requests_stay_under_the_byte_limit(event_factory: Factory) -> None:
    """build_requests splits a group whose JSON would pass max_request_bytes."""
    items = [transform(event_factory(properties={"order_id": str(i), "note": "x" * 500}), OPTIONS)
             for i in range(100)]
    requests = build_requests(items, "C0EXAMPLE0PIXEL00001", max_request_bytes=20_000)
    assert len(requests) > 1 and sum(len(r["data"]) for r in requests) == 100
    assert all(len(json.dumps(r, separators=(",", ":"))) <= 20_000 for r in requests)


EDGES = ["0.0.0.0", "0.0.0.1", "9.255.255.255", "10.0.0.0", "11.0.0.0", "126.255.255.255",
         "127.0.0.1", "128.0.0.0", "169.253.255.255", "169.254.0.1", "169.255.0.0",
         "172.15.255.255", "172.16.0.0", "172.31.255.255", "172.32.0.0", "192.167.255.255",
         "192.168.1.1", "192.169.0.0", "223.255.255.255", "224.0.0.1", "239.255.255.255",
         "240.0.0.1", "255.255.255.255"]


@given(st.ip_addresses(v=4).map(str) | st.sampled_from(EDGES))
def test_ipv4_public_fast_path_gives_the_standard_librarys_answer(text: str) -> None:
    """A dotted quad is judged from its octets; the answer is what ipaddress says."""
    ip = ipaddress.ip_address(text)
    expected = not (ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast
                    or any(ip in ipaddress.ip_network(n)
                           for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")))
    is_public_ip.cache_clear()
    assert is_public_ip(text) == expected
