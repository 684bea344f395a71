"""What real shops send, through a gateway process and the sandbox process.

Bodies have the shape and fields of the platforms' published samples (Shopify's webhook
reference and API-library fixtures, WooCommerce's REST v3 order, GA4's Measurement Protocol
reference, Segment's e-commerce spec), with values of our own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.processes import Process, sandbox_events, start_gateway, wait_for, write_config
from tiktok_gateway.identity import sha256_hex

KEY = {"Authorization": "Bearer acceptance-server-key-0123"}
BROWSER = {"Authorization": "Bearer acceptance-browser-key-0123", "Origin": "https://shop.example"}
ADMIN = ("admin", "acceptance-admin-password")
SHOPIFY_SECRET = "shopify-acceptance-secret"
WOO_SECRET = "woo-acceptance-secret"
SETUP = f"""
[webhooks]
shopify_secret = "{SHOPIFY_SECRET}"
woocommerce_secret = "{WOO_SECRET}"

[[keys]]
name = "web"
secret = "acceptance-browser-key-0123"
kind = "browser"
allowed_origins = ["https://shop.example"]
"""


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def shopify_order(order_id: int, **fields: Any) -> dict[str, Any]:
    """An order shaped like Shopify's orders/create reference payload, placed a minute ago."""
    now = time.time() - 60
    order: dict[str, Any] = {
        "id": order_id, "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "browser_ip": "81.2.69.142", "cancel_reason": None, "cancelled_at": None,
        "client_details": {"accept_language": None, "browser_height": None,
                           "browser_ip": "81.2.69.142", "user_agent": "Mozilla/5.0 (Shopper)"},
        "contact_email": "Shopper.One@Example.com", "created_at": iso(now), "currency": "EUR",
        "email": "Shopper.One@Example.com", "financial_status": "paid",
        "landing_site": "/products/socks?utm_source=tiktok&ttclid=E.C.P.landing-shopify",
        "name": "#1001", "note_attributes": [], "order_number": 1001,
        "order_status_url": "https://shop.example/123/orders/abc/authenticate?key=x",
        "phone": None, "processed_at": iso(now), "test": False, "total_price": "42.50",
        "updated_at": iso(now),
        "billing_address": {"first_name": "Max", "country": "Germany", "country_code": "DE",
                            "phone": "030 901820"},
        "customer": {"id": 7001, "email": "Shopper.One@Example.com", "phone": None},
        "line_items": [
            {"id": 1, "title": "Socks", "price": "20.00", "quantity": 2, "sku": "SOCK-1",
             "variant_id": 11, "product_id": 111},
            {"id": 2, "title": "Gift wrap", "price": "2.50", "quantity": 1, "sku": None,
             "variant_id": None, "product_id": None},
        ],
    }
    order.update(fields)
    return order


def post_shopify(url: str, order: dict[str, Any], topic: str = "orders/create") -> httpx.Response:
    body = json.dumps(order).encode()
    signature = base64.b64encode(hmac.new(SHOPIFY_SECRET.encode(), body, hashlib.sha256).digest())
    return httpx.post(f"{url}/webhooks/shopify", content=body, timeout=10, headers={
        "X-Shopify-Hmac-Sha256": signature.decode(), "X-Shopify-Topic": topic,
        "Content-Type": "application/json"})


def woo_order(order_id: int, status: str = "processing", paid: float | None = None,
              **fields: Any) -> dict[str, Any]:
    """An order shaped like WooCommerce's REST v3 order object."""
    created = time.time() - 120

    def gmt(at: float | None) -> str | None:
        return None if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S")

    order: dict[str, Any] = {
        "id": order_id, "number": str(order_id), "status": status, "currency": "USD",
        "date_created_gmt": gmt(created), "date_paid_gmt": gmt(paid), "total": "29.35",
        "customer_id": 0, "customer_ip_address": "", "customer_user_agent": "",
        "payment_method": "cod" if paid is None else "stripe",
        "billing": {"first_name": "John", "email": "john.doe@example.com",
                    "phone": "(555) 555-5555", "country": "US"},
        "shipping": {"country": "US"}, "meta_data": [],
        "line_items": [{"id": 315, "name": "Woo Single &ndash; Blue", "product_id": 93,
                        "variation_id": 0, "quantity": 2, "sku": "", "price": 3},
                       {"id": 316, "name": "Deleted product", "product_id": 0,
                        "variation_id": 0, "quantity": 1, "sku": "", "price": 8}],
    }
    order.update(fields)
    return order


def post_woo(url: str, order: dict[str, Any], topic: str = "order.updated") -> httpx.Response:
    body = json.dumps(order).encode()
    signature = base64.b64encode(hmac.new(WOO_SECRET.encode(), body, hashlib.sha256).digest())
    return httpx.post(f"{url}/webhooks/woocommerce", content=body, timeout=10, headers={
        "X-WC-Webhook-Signature": signature.decode(), "X-WC-Webhook-Topic": topic,
        "Content-Type": "application/json"})


@pytest.fixture
def gateway(tmp_path: Path, tiktok_process: Process) -> Iterator[Any]:
    """Start a gateway process with extra config; returns its URL."""
    started: list[Process] = []

    def start(extra: str = "", merge_window: float = 0, browser_wait: float = 0) -> str:
        config = write_config(tmp_path, tiktok_process.url, extra=extra + SETUP,
                              name=f"gateway{len(started)}")
        config.write_text(config.read_text().replace(
            "merge_window_seconds = 0", f"merge_window_seconds = {merge_window}").replace(
            "browser_purchase_wait_seconds = 0", f"browser_purchase_wait_seconds = {browser_wait}"))
        started.append(start_gateway(tmp_path, config))
        return started[-1].url

    yield start
    for process in started:
        process.stop()


def settled(sandbox: Process, count: int, timeout: float = 10) -> list[dict[str, Any]]:
    """The sandbox's events once `count` arrived (and a moment more for any extra)."""
    wait_for(lambda: len(sandbox_events(sandbox)) >= count, timeout=timeout)
    time.sleep(0.5)
    return sandbox_events(sandbox)


def test_published_sample_bodies_are_acknowledged(gateway: Any, tiktok_process: Process) -> None:
    """The platforms' own test bodies (old, cancelled, voided, test orders) get a 2xx with the
    reason, never a 4xx the platform would retry for hours; none is sent as a purchase."""
    url = gateway()
    docs_sample = shopify_order(820982911946154508, cancelled_at="2021-12-31T19:00:00-05:00",
                                cancel_reason="customer", financial_status="voided", test=True,
                                created_at="2021-12-31T19:00:00-05:00",
                                processed_at="2021-12-31T19:00:00-05:00")
    answer = post_shopify(url, docs_sample)
    assert answer.status_code == 200 and answer.json()["reason"] == "cancelled order"
    old_paid = shopify_order(450789469, financial_status="partially_refunded",
                             created_at="2008-01-10T11:00:00-05:00",
                             processed_at="2008-01-10T11:00:00-05:00",
                             updated_at="2008-01-10T11:00:00-05:00")
    answer = post_shopify(url, old_paid, topic="orders/paid")
    assert answer.status_code == 200 and answer.json()["ignored"] is True
    assert "event_time" in json.dumps(answer.json()["rejected"])
    woo_sample = woo_order(727, paid=time.time() - 10 * 86400,
                           date_created_gmt="2017-03-22T19:28:02")
    answer = post_woo(url, woo_sample)
    assert answer.status_code == 200 and "event_time" in json.dumps(answer.json())
    time.sleep(1)
    assert sandbox_events(tiktok_process) == []


def test_order_lifecycle(gateway: Any, tiktok_process: Process) -> None:
    """Unpaid, cancelled, voided, refunded and test orders are not purchases; an unpaid order
    is sent once when orders/paid comes; WooCommerce cash on delivery waits for payment."""
    url = gateway()
    reasons = {
        "unpaid": post_shopify(url, shopify_order(2001, financial_status="pending")),
        "voided": post_shopify(url, shopify_order(2002, financial_status="voided")),
        "refunded": post_shopify(url, shopify_order(2003, financial_status="refunded")),
        "cancelled": post_shopify(url, shopify_order(2004, cancelled_at=iso(time.time()))),
        "cod": post_woo(url, woo_order(3001, paid=None)),
        "woo-cancelled": post_woo(url, woo_order(3002, status="cancelled", paid=time.time())),
    }
    assert all(r.status_code == 200 for r in reasons.values())
    assert "not paid yet" in reasons["unpaid"].json()["reason"]
    assert reasons["voided"].json()["reason"] == "voided order"
    assert reasons["refunded"].json()["reason"] == "refunded order"
    assert reasons["cancelled"].json()["reason"] == "cancelled order"
    assert "cash on delivery" in reasons["cod"].json()["reason"]
    assert "cancelled" in reasons["woo-cancelled"].json()["reason"]
    test_order = post_shopify(url, shopify_order(2005, test=True))
    assert test_order.status_code == 202 and test_order.json()["filtered"] == {"test order": 1}
    paid_later = post_shopify(url, shopify_order(2001, financial_status="paid"), topic="orders/paid")
    assert paid_later.status_code == 202 and paid_later.json()["queued"] == 1
    assert post_woo(url, woo_order(3001, paid=time.time())).json()["queued"] == 1
    nine_days = time.time() - 9 * 86400  # ordered by bank transfer nine days ago, paid now
    old_order = shopify_order(2006, financial_status="paid", created_at=iso(nine_days),
                              processed_at=iso(nine_days), updated_at=iso(time.time()))
    assert post_shopify(url, old_order, topic="orders/paid").json()["queued"] == 1
    events = settled(tiktok_process, 3)
    assert sorted(e["event_id"] for e in events) == [
        "2001_CompletePayment", "2006_CompletePayment", "3001_CompletePayment"]
    assert all(e["test_event_code"] is None for e in events)


def test_test_orders_go_to_the_test_code(gateway: Any, tiktok_process: Process) -> None:
    """A shop's test order reaches a destination with a test code as a test event only."""
    url = gateway('test_event_code = "TEST4242"\n')
    assert post_shopify(url, shopify_order(2101, test=True)).status_code == 202
    [event] = settled(tiktok_process, 1)
    assert event["test_event_code"] == "TEST4242"


def test_webhook_fields_reach_tiktok_right(gateway: Any, tiktok_process: Process) -> None:
    """The billing country reads a national phone; ttclid comes from landing_site; a custom
    line item has no content_id; WooCommerce entities are decoded; 0.0.0.0 is never sent."""
    url = gateway()
    assert post_shopify(url, shopify_order(2201)).status_code == 202
    woo = woo_order(3201, paid=time.time(), customer_ip_address="0.0.0.0")
    assert post_woo(url, woo).status_code == 202
    events = {e["event_id"]: e["parsed"] for e in settled(tiktok_process, 2)}
    shop = events["2201_CompletePayment"]
    assert shop["user"]["phone"] == [sha256_hex("+4930901820")]  # German, in a US-region shop
    assert shop["user"]["ttclid"] == "E.C.P.landing-shopify"
    assert shop["user"]["ip"] == "81.2.69.142"
    contents = shop["properties"]["contents"]
    assert contents[0]["content_id"] == "SOCK-1" and "content_id" not in contents[1]
    assert "None" not in json.dumps(shop)
    woo_event = events["3201_CompletePayment"]
    assert woo_event["properties"]["contents"][0]["content_name"] == "Woo Single – Blue"
    assert "content_id" not in woo_event["properties"]["contents"][1]
    assert "ip" not in woo_event["user"]


def test_one_purchase_per_order_and_copies_merged(gateway: Any, tiktok_process: Process) -> None:
    """The browser's copy and the webhook's become one event with both copies' match keys and
    the webhook's value; a copy after delivery is a late duplicate the inspector shows."""
    tmp_url = gateway(merge_window=2)
    browser_copy = {"event": "purchase", "user": {"email": "shopper.one@example.com"},
                    "properties": {"order_id": "2301", "value": 1, "currency": "EUR"}}
    answer = httpx.post(f"{tmp_url}/v1/events", json=browser_copy, headers=BROWSER, timeout=10)
    assert answer.status_code == 202 and answer.json()["queued"] == 1
    webhook = post_shopify(tmp_url, shopify_order(2301))
    assert webhook.json()["merged"] == 1
    [event] = settled(tiktok_process, 1, timeout=15)
    user, props = event["parsed"]["user"], event["parsed"]["properties"]
    assert user["email"] == [sha256_hex("shopper.one@example.com")]
    assert user["phone"] == [sha256_hex("+4930901820")] and user["ip"] == "81.2.69.142"
    assert props["value"] == 42.5  # the signed webhook's, not the browser's claim
    late = httpx.post(f"{tmp_url}/v1/events", headers=KEY, timeout=10, json={
        "event": "purchase", "user": {"external_id": "crm-7001"},
        "properties": {"order_id": "2301", "value": 42.5, "currency": "EUR"}})
    assert late.json()["duplicates"] == 1 and late.json()["merged"] == 0
    time.sleep(1)
    assert len(sandbox_events(tiktok_process)) == 1
    records = httpx.get(f"{tmp_url}/dashboard/inspector", params={"order_id": "2301"},
                        auth=ADMIN).text
    record_id = records.split('href="/dashboard/inspector/')[1].split('"')[0]
    page = httpx.get(f"{tmp_url}/dashboard/inspector/{record_id}", auth=ADMIN).text
    assert "merged" in page and "late duplicate" in page
    assert "would have added external_id" in page


def test_the_shoppers_context_only(gateway: Any, tiktok_process: Process) -> None:
    """A server key's request never lends the backend's IP and user agent to the event;
    private and loopback addresses in the event are never sent."""
    url = gateway()
    httpx.post(f"{url}/v1/events", headers={**KEY, "User-Agent": "python-httpx/0.27"},
               timeout=10, json={"event": "view_item", "event_id": "ctx-1"})
    httpx.post(f"{url}/v1/events", headers=KEY, timeout=10, json={
        "event": "view_item", "event_id": "ctx-2", "user": {"ip": "10.1.2.3"}})
    events = {e["event_id"]: e["parsed"] for e in settled(tiktok_process, 2)}
    assert "user" not in events["ctx-1"] or not {"ip", "user_agent"} & set(events["ctx-1"]["user"])
    assert "ip" not in events["ctx-2"].get("user", {})


def ga4_body(**fields: Any) -> dict[str, Any]:
    """A Measurement Protocol body shaped like GA4's reference purchase with user_data."""
    body: dict[str, Any] = {
        "client_id": "1234.5678", "user_id": "ga4-user-1",
        "timestamp_micros": int((time.time() - 30) * 1_000_000),
        "user_agent": "Mozilla/5.0 (GA4 shopper)", "ip_override": "81.2.69.142",
        "user_data": {"sha256_email_address": sha256_hex("ga4.user@example.com")},
        "events": [{"name": "purchase", "params": {
            "currency": "USD", "transaction_id": "T_4001", "value": 30.03,
            "items": [{"item_id": "SKU_12345", "item_name": "Stan and Friends Tee",
                       "price": 10.01, "quantity": 3}]}}],
    }
    body.update(fields)
    return body


def test_ga4_measurement_protocol(gateway: Any, tiktok_process: Process) -> None:
    """GA4's top-level user_agent is used; ad_user_data DENIED sends no user data;
    ad_personalization DENIED sets limited_data_use; a refund is never sent; the debug
    endpoint validates and stores nothing."""
    url = gateway()
    secret = {"api_secret": "acceptance-server-key-0123"}
    debug = httpx.post(f"{url}/debug/mp/collect", params=secret, timeout=10, json=ga4_body(
        events=[{"name": "purchase", "params": {"currency": "DOLLARS", "value": 1}}]))
    assert debug.status_code == 200
    [message] = debug.json()["validationMessages"]
    assert message["fieldPath"] == "events[0].properties.currency"
    assert httpx.post(f"{url}/mp/collect", params=secret, json=ga4_body(),
                      timeout=10).status_code == 202
    denied = ga4_body(consent={"ad_user_data": "DENIED", "ad_personalization": "DENIED"},
                      events=[{"name": "add_to_cart", "params": {"event_id": "ga4-denied"}}])
    assert httpx.post(f"{url}/mp/collect", params=secret, json=denied, timeout=10).status_code == 202
    refund = ga4_body(events=[{"name": "refund", "params": {"transaction_id": "T_4001"}}])
    answer = httpx.post(f"{url}/mp/collect", params=secret, json=refund, timeout=10).json()
    assert answer["queued"] == 0 and answer["filtered"]
    events = {e["event_id"]: e for e in settled(tiktok_process, 2)}
    assert set(events) == {"T_4001_CompletePayment", "ga4-denied"}
    purchase = events["T_4001_CompletePayment"]["parsed"]
    assert purchase["user"]["user_agent"] == "Mozilla/5.0 (GA4 shopper)"
    assert purchase["user"]["email"] == [sha256_hex("ga4.user@example.com")]
    withheld = events["ga4-denied"]["parsed"]
    assert "user" not in withheld and withheld["limited_data_use"] is True


def segment_order_completed(order_id: str) -> dict[str, Any]:
    """A track call shaped like Segment's Order Completed spec example."""
    return {
        "type": "track", "event": "Order Completed", "userId": "user-501",
        "anonymousId": "anon-501", "messageId": f"msg-{order_id}",
        "timestamp": iso(time.time() - 30),
        "context": {"ip": "81.2.69.142", "userAgent": "Mozilla/5.0 (Segment shopper)",
                    "locale": "en-US", "page": {"url": "https://shop.example/thanks?ttclid=E.C.P.seg"},
                    "traits": {"email": "Seg.Shopper@Example.com", "phone": "+1 213 373 4253"}},
        "properties": {"checkout_id": "fksdjfsdjfisjf9sdfjsd9f", "order_id": order_id,
                       "affiliation": "Google Store", "total": 27.5, "subtotal": 22.5,
                       "revenue": 22.5, "shipping": 3, "tax": 2, "discount": 2.5,
                       "coupon": "hasbros", "currency": "USD",
                       "products": [{"product_id": "507f1f77bcf86cd799439011", "sku": "45790-32",
                                     "name": "Monopoly: 3rd Edition", "price": 19,
                                     "quantity": 1, "category": "Games"},
                                    {"product_id": "505bd76785ebb509fc183733", "sku": "46493-32",
                                     "name": "Uno Card Game", "price": 3, "quantity": 2,
                                     "category": "Games"}]},
    }


def test_segment_spec_calls_need_no_mapping(gateway: Any, tiktok_process: Process) -> None:
    """Segment's HTTP API batch of Order Completed and Checkout Step Completed: the order is
    one purchase with value, contents and the shopper's keys; a checkout step is not one."""
    url = gateway()
    step = {"type": "track", "event": "Checkout Step Completed", "messageId": "msg-step-2",
            "userId": "user-501", "properties": {"checkout_id": "50314b8e9bcf", "step": 2,
                                                 "shipping_method": "Fedex"}}
    batch = {"batch": [segment_order_completed("5001"), step]}
    answer = httpx.post(f"{url}/v1/events", json=batch, headers=KEY, timeout=10)
    assert answer.status_code == 202 and answer.json()["queued"] == 2, answer.text
    events = {e["event_id"]: e for e in settled(tiktok_process, 2)}
    order = events["5001_CompletePayment"]["parsed"]
    assert order["properties"]["value"] == 27.5 and order["properties"]["currency"] == "USD"
    assert [c["content_id"] for c in order["properties"]["contents"]] == [
        "507f1f77bcf86cd799439011", "505bd76785ebb509fc183733"]
    assert order["user"]["external_id"] == [sha256_hex("user-501")]
    assert order["user"]["email"] == [sha256_hex("seg.shopper@example.com")]
    assert order["user"]["ip"] == "81.2.69.142" and order["user"]["ttclid"] == "E.C.P.seg"
    assert order["page"]["url"].startswith("https://shop.example/thanks")
    assert events["msg-step-2"]["event"] == "Checkout Step Completed"


def test_bodies_are_bounded_before_signatures(gateway: Any) -> None:
    """A 20 MB unsigned webhook or GA4 body is refused with 413, never read whole."""
    url = gateway()
    big = b"{" + b" " * (20 * 1024 * 1024) + b"}"
    for path in ("/webhooks/shopify", "/webhooks/woocommerce",
                 "/mp/collect?api_secret=acceptance-server-key-0123"):
        assert httpx.post(url + path, content=big, timeout=30).status_code == 413


def test_field_level_details(gateway: Any, tiktok_process: Process) -> None:
    """Unknown top-level keys are named; blank emails are absent, not invalid; an event_names
    target written in the wrong case is TikTok's standard name."""
    url = gateway('event_names = { "brochure_download" = "download" }\n')
    answer = httpx.post(f"{url}/v1/events", headers=KEY, timeout=10, json={
        "event": "brochure_download", "event_id": "d-1", "userr": {"email": "x@example.com"},
        "user": {"email": "  ", "phone": ""}}).json()
    assert answer["warnings"] == [{"index": 0, "field": "userr", "message": "unknown field: ignored"}]
    [event] = settled(tiktok_process, 1)
    assert event["event"] == "Download"


def test_a_refund_after_sending_is_recorded_against_the_order(gateway: Any,
                                                              tiktok_process: Process) -> None:
    """A refund of a delivered order is not sent; it is recorded, and the inspector shows it."""
    url = gateway()
    assert post_shopify(url, shopify_order(2401)).status_code == 202
    settled(tiktok_process, 1)
    refund = post_shopify(url, shopify_order(2401, financial_status="refunded"),
                          topic="orders/updated")
    assert refund.status_code == 200 and refund.json()["recorded"] == "order refunded"
    time.sleep(0.5)
    assert len(sandbox_events(tiktok_process)) == 1
    listing = httpx.get(f"{url}/dashboard/inspector", params={"order_id": "2401"}, auth=ADMIN).text
    record_id = listing.split('href="/dashboard/inspector/')[1].split('"')[0]
    page = httpx.get(f"{url}/dashboard/inspector/{record_id}", auth=ADMIN).text
    assert "the order was <b>refunded</b>" in page
    # The gap report page checks the orders the webhooks reported, without an upload: the
    # refund after sending, and a test order the destination (without a test code) filtered.
    assert post_shopify(url, shopify_order(2402, test=True)).status_code == 202
    gaps = ""
    for _ in range(30):  # the filtered record is written with the next telemetry flush
        gaps = httpx.get(f"{url}/dashboard/gaps", auth=ADMIN).text
        if "2402" in gaps:
            break
        time.sleep(0.2)
    found = re.findall(r'<tr class="gap-order" data-label="[^"]*"><td><bdi>(.*?)</bdi></td>'
                       r'<td><bdi>(.*?)</bdi></td><td>([^<]*)</td>', gaps)
    rows = {order: (label, change) for order, label, change in found}
    assert rows == {"2401": ("delivered", "refunded after sending"),
                    "2402": ("filtered (test order)", "")}, rows


def test_a_browser_key_cannot_claim_an_order_ahead_of_the_webhook(gateway: Any,
                                                                   tiktok_process: Process) -> None:
    """A forged browser purchase (public key, any order id, any value) waits past the merge
    window; the signed webhook arriving later still replaces its value before anything is sent."""
    url = gateway(merge_window=0.5, browser_wait=4)
    forged = {"event": "purchase", "properties": {"order_id": "2501", "value": 99999,
                                                  "currency": "EUR"}}
    assert httpx.post(f"{url}/v1/events", json=forged, headers=BROWSER, timeout=10).json()["queued"] == 1
    time.sleep(1.5)  # past the merge window of server copies
    assert sandbox_events(tiktok_process) == []
    assert post_shopify(url, shopify_order(2501)).json()["merged"] == 1
    [event] = settled(tiktok_process, 1, timeout=15)
    assert event["parsed"]["properties"]["value"] == 42.5
