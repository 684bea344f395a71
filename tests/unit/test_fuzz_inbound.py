"""Property-based fuzzing of the inbound schema: any JSON gives a verdict naming fields."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reliability import record
from tiktok_gateway import InvalidEvent, TransformOptions, transform

KEYS = ["event", "event_id", "event_time", "user", "email", "phone", "external_id", "ip",
        "properties", "value", "currency", "items", "contents", "price", "quantity",
        "order_id", "page", "url", "consent", "marketing", "test_event_code", "content_type"]
scalars = (st.none() | st.booleans() | st.integers(-10**15, 10**15)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
           | st.sampled_from(["purchase", "USD", "+12133734253", "a@b.co", "2024-05-29T10:00:00Z",
                              "13.57.97.131", "product"]))
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(KEYS), children, max_size=6),
    max_leaves=30)
names = st.sampled_from(["purchase", "add_to_cart", "Search", "CompletePayment", "my_custom"])
users = st.fixed_dictionaries({}, optional={
    "email": st.sampled_from(["a@b.co", " A@B.CO ", "nope", ""]) | json_values,
    "phone": st.sampled_from(["+12133734253", "(213) 373-4253", "12"]) | json_values,
    "ip": st.sampled_from(["13.57.97.131", "::1", "999.1.1.1"]) | json_values})
props = st.fixed_dictionaries({}, optional={
    "value": st.sampled_from([1, "2.50", -1, "x"]) | json_values,
    "currency": st.sampled_from(["usd", "EUR", "XX"]) | json_values,
    "order_id": st.integers(0, 10**6) | st.text(max_size=8),
    "items": st.lists(st.fixed_dictionaries({}, optional={
        "item_id": st.integers() | st.text(max_size=5), "price": json_values,
        "quantity": json_values}), max_size=2)})
events = st.fixed_dictionaries({"event": names}, optional={
    "user": users, "properties": props, "event_id": json_values, "event_time": json_values,
    "consent": json_values, "page": json_values}) | st.dictionaries(
    st.sampled_from(KEYS), json_values, max_size=8)
TRIED = {"inputs": 0, "accepted": 0, "rejected": 0}


@settings(max_examples=1500, deadline=None)
@given(events | json_values)
def test_any_input_is_accepted_or_rejected_with_fields(raw: Any) -> None:
    """Never an unexpected exception; every rejection names a field; no raw email escapes."""
    TRIED["inputs"] += 1
    try:
        item = transform(raw, TransformOptions(max_age_seconds=10**11, max_future_seconds=10**11))
    except InvalidEvent as exc:
        TRIED["rejected"] += 1
        assert exc.errors and all(e.field and e.message for e in exc.errors)
        return
    finally:
        record("fuzz_inbound", **TRIED)
    TRIED["accepted"] += 1
    # The user object is what carries personal data; an event_id or a custom property is
    # the sender's own text and passes through, whatever it looks like.
    text = json.dumps(item.data.get("user", {})).lower()
    assert "a@b.co" not in text and "2133734253" not in text
