"""The lint rules: what TikTok rejects, drops, or accepts with a warning."""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reliability import record
from tiktok_gateway.tiktok.legacy import lint_body
from tiktok_gateway.tiktok.lint import lint_request

EXAMPLES = Path(__file__).parents[2] / "examples"
NOW = time.time()
SOAK = bool(os.environ.get("TIKTOK_GATEWAY_SOAK"))


def example(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    return body


def fresh_a() -> dict[str, Any]:
    body = copy.deepcopy(example("example-a-web-purchase.json"))
    body["data"][0]["event_time"] = int(NOW) - 60
    return body


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("example-*.json")))
def test_shared_examples_pass(name: str) -> None:
    """TikTok's example bodies A, B and C pass with nothing dropped."""
    report = lint_body(example(name))
    assert report.ok, report.as_dict()
    assert not any(v.dropped for v in report.events)


def broken(path: str, value: Any) -> dict[str, Any]:
    """Example A with one field set to a bad value (`None` removes it)."""
    body = fresh_a()
    *parents, last = path.split(".")
    target: Any = body
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if value is None:
        del target[last]
    else:
        target[last] = value
    return body


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("data.0.event_id", 100045, "data.0.event_id"),
        ("data.0.event_time", 1717000000000, "data.0.event_time"),
        ("data.0.event_time", "2024-05-29", "data.0.event_time"),
        ("data.0.event", None, "data.0.event"),
        ("data.0.properties.contents.0.content_id", 1077218,
         "data.0.properties.contents.0.content_id"),
        ("data.0.properties.order_id", 100045, "data.0.properties.order_id"),
        ("event_source", "website", "event_source"),
        ("event_source_id", None, "event_source_id"),
        ("data", [], "data"),
    ],
)
def test_rejections_name_the_field(path: str, value: Any, field: str) -> None:
    """What TikTok rejects with 40002 is an error on the right path."""
    report = lint_request(broken(path, value), now=NOW)
    assert not report.ok
    error = report.first_error()
    assert error is not None and error.field == field


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("data.0.user.email", ["alice@example.com"], "data.0.user.email.0"),
        ("data.0.user.phone", "+12133734253", "data.0.user.phone"),
        ("data.0.user.external_id", ["USER_123"], "data.0.user.external_id.0"),
        ("data.0.user.ip", "not-an-ip", "data.0.user.ip"),
        ("data.0.properties.value", "46.00", "data.0.properties.value"),
        ("data.0.properties.value", -5, "data.0.properties.value"),
        ("data.0.properties.currency", "usd", "data.0.properties.currency"),
        ("data.0.properties.currency", "XYZ", "data.0.properties.currency"),
        ("data.0.properties.content_type", "sku", "data.0.properties.content_type"),
        ("data.0.properties.contents.0.quantity", "2", "data.0.properties.contents.0.quantity"),
    ],
)
def test_silent_drops_are_reported(path: str, value: Any, field: str) -> None:
    """What TikTok accepts but ignores is listed as dropped, and removed from the parsed event."""
    report = lint_request(broken(path, value), now=NOW)
    assert report.ok
    dropped = report.events[0].dropped
    assert [d.field for d in dropped] == [field]


def test_unhashed_email_is_removed_from_parsed_event() -> None:
    """The parsed event keeps the hashed values only."""
    body = broken("data.0.user.email", ["alice@example.com", "a" * 64])
    parsed = lint_request(body, now=NOW).events[0].parsed
    assert parsed["user"]["email"] == [None, "a" * 64]


def test_more_than_1000_events_rejects_everything() -> None:
    """TikTok rejects a request of more than 1,000 events whole."""
    body = fresh_a()
    body["data"] = body["data"] * 1001
    report = lint_request(body, now=NOW)
    assert report.first_error() is not None and report.first_error().field == "data"  # type: ignore[union-attr]


def test_warnings() -> None:
    """Custom names, a wrong-case standard name and a missing currency are warnings."""
    body = broken("data.0.event", "completepayment")
    body["data"][0]["properties"].pop("currency")
    warnings = {w.field: w.message for w in lint_request(body, now=NOW).events[0].warnings}
    assert "CompletePayment" in warnings["data.0.event"]
    assert "data.0.properties.currency" in warnings


def test_legacy_paths_are_reported_in_legacy_terms() -> None:
    """A 1.0 batch body is linted with the same rules, with its own paths."""
    body = {"pixel_code": "C0EXAMPLE0PIXEL00001", "batch": [
        {"type": "track", "event": "CompletePayment", "event_id": "1",
         "timestamp": "2020-09-17T19:49:27Z",
         "context": {"user": {"email": "raw@example.com"}, "ad": {"callback": "E.C.P.x"}},
         "properties": {"contents": [{"content_id": 5}]}},
    ]}
    report = lint_body(body)
    assert report.kind == "pixel/batch"
    assert report.first_error() is not None
    assert report.first_error().field == "batch.0.properties.contents.0.content_id"  # type: ignore[union-attr]
    assert [d.field for d in report.events[0].dropped] == ["batch.0.context.user.email"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["event", "event_time", "event_id", "user", "email",
                                       "properties", "value", "currency", "contents", "data",
                                       "content_id", "ip", "page", "url", "event_source"]),
                      children, max_size=5),
    max_leaves=25,
)
# Bodies shaped like 2.0 requests, so that the fuzzing reaches the per-event rules too.
shaped_events = st.fixed_dictionaries({}, optional={
    "event": st.sampled_from(["CompletePayment", "ViewContent", "", "my_event"]) | json_values,
    "event_time": st.sampled_from([int(NOW), int(NOW) * 1000, -1]) | json_values,
    "event_id": json_values,
    "user": st.fixed_dictionaries({}, optional={
        "email": st.sampled_from(["a" * 64, "a@b.co", ["f" * 64]]) | json_values,
        "phone": json_values, "ip": st.sampled_from(["13.57.97.131", "::1", "x"]) | json_values,
    }) | json_values,
    "properties": st.fixed_dictionaries({}, optional={
        "value": json_values, "currency": st.sampled_from(["USD", "usd", "XXX"]) | json_values,
        "contents": st.lists(st.dictionaries(
            st.sampled_from(["content_id", "price", "quantity"]), json_values), max_size=2),
    }) | json_values,
})
shaped_bodies = st.fixed_dictionaries({
    "event_source": st.sampled_from(["web", "app", "offline", "crm"]) | json_values,
    "event_source_id": st.sampled_from(["CPIXEL1234567890"]) | json_values,
    "data": st.lists(shaped_events, max_size=3) | json_values,
})
# Example A with one field replaced: mostly valid bodies, so accepted ones are fuzzed as well.
MUTABLE_PATHS = ["data.0.event", "data.0.event_time", "data.0.event_id", "data.0.user.email",
                 "data.0.user.phone", "data.0.user.ip", "data.0.properties.value",
                 "data.0.properties.currency", "data.0.properties.contents",
                 "data.0.properties.content_type", "data.0.page", "test_event_code"]
mutated_bodies = st.builds(broken, st.sampled_from(MUTABLE_PATHS), json_values)
TRIED = {"inputs": 0, "accepted": 0, "rejected": 0}


@settings(max_examples=1500 if SOAK else 300, deadline=None)
@given(json_values | shaped_bodies | mutated_bodies)
def test_lint_gives_a_verdict_naming_fields(body: Any) -> None:
    """Any JSON gives a verdict, never an exception; every finding names a field and why."""
    report = lint_body(body)
    TRIED["inputs"] += 1
    TRIED["accepted" if report.ok else "rejected"] += 1
    record("fuzz_check", **TRIED)
    findings = report.request_errors + report.request_warnings + [
        f for v in report.events for f in v.errors + v.warnings + v.dropped]
    assert all(f.field and f.message for f in findings)
    if not report.ok:
        assert report.first_error() is not None
    json.dumps(report.as_dict())
