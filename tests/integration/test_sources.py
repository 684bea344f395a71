"""Shop webhooks and GA4 Measurement Protocol through a running gateway to the sandbox."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN, PIXEL, SERVER_KEY, TOKEN
from tiktok_gateway.identity import sha256_hex

SHOPIFY_SECRET = "shopify-webhook-secret-123"
WOO_SECRET = "woocommerce-webhook-secret-456"
WEBHOOKS = {"shopify_secret": SHOPIFY_SECRET, "woocommerce_secret": WOO_SECRET}


def sign(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def received(sandbox_url: str, count: int) -> list[dict[str, Any]]:
    deadline = time.time() + 10
    while True:
        events: list[dict[str, Any]] = httpx.get(f"{sandbox_url}/sandbox/events").json()["events"]
        if len(events) >= count or time.time() > deadline:
            return events
        time.sleep(0.05)


def shopify_body(order_id: int = 450789469) -> bytes:
    """An orders/create payload shaped like Shopify's documented example."""
    return json.dumps({
        "id": order_id, "name": "#1001", "email": "Bob.Norman@Mail.Example.com",
        "phone": "+1 613-555-0182", "created_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00",
                                                                 time.gmtime()),
        "currency": "USD", "total_price": "598.94", "financial_status": "paid",
        "order_status_url": "https://jsmith.myshopify.com/548380009/orders/123/authenticate",
        "browser_ip": "216.191.105.146",
        "client_details": {"browser_ip": "216.191.105.146", "user_agent": "Mozilla/5.0 Shop"},
        "customer": {"id": 207119551, "email": "bob.norman@mail.example.com"},
        "line_items": [
            {"id": 466157049, "variant_id": 39072856, "sku": "IPOD2008GREEN", "title": "IPod Nano",
             "quantity": 1, "price": "199.00"},
            {"id": 518995019, "variant_id": 49148385, "sku": "IPOD2008RED", "title": "IPod Nano",
             "quantity": 2, "price": "199.97"}],
        "note_attributes": [{"name": "ttclid", "value": "E.C.P.shopify123"}],
    }).encode()


def post_shopify(url: str, body: bytes, secret: str = SHOPIFY_SECRET,
                 topic: str = "orders/create") -> httpx.Response:
    return httpx.post(f"{url}/webhooks/shopify", content=body, headers={
        "X-Shopify-Hmac-Sha256": sign(secret, body), "X-Shopify-Topic": topic,
        "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "Content-Type": "application/json"})


def test_shopify_order_becomes_a_purchase(make_gateway: Callable[..., str],
                                          sandbox_url: str) -> None:
    """A signed orders/create reaches TikTok as CompletePayment with the shared event_id."""
    url = make_gateway(webhooks=WEBHOOKS)
    response = post_shopify(url, shopify_body())
    assert response.status_code == 202, response.text
    [event] = received(sandbox_url, 1)
    assert event["event"] == "CompletePayment"
    assert event["event_id"] == "450789469_CompletePayment"
    assert (event["value"], event["currency"]) == (598.94, "USD")
    user = event["parsed"]["user"]
    assert user["email"] == [sha256_hex("bob.norman@mail.example.com")]
    assert user["phone"] == [sha256_hex("+16135550182")]
    assert user["ttclid"] == "E.C.P.shopify123" and user["ip"] == "216.191.105.146"
    assert event["parsed"]["properties"]["content_ids"] == ["IPOD2008GREEN", "IPOD2008RED"]


def test_shopify_retries_are_idempotent(make_gateway: Callable[..., str],
                                        sandbox_url: str) -> None:
    """Shopify resending the same webhook is a duplicate, not a second purchase."""
    url = make_gateway(webhooks=WEBHOOKS)
    post_shopify(url, shopify_body())
    again = post_shopify(url, shopify_body())
    assert again.json()["duplicates"] == 1
    time.sleep(0.4)
    assert len(received(sandbox_url, 1)) == 1


def test_bad_signature_is_refused_and_counted(make_gateway: Callable[..., str],
                                              caplog: pytest.LogCaptureFixture) -> None:
    """A webhook signed with another secret gets 401 and nothing is queued; Tag health counts
    it, and the log says which secret to check, once a minute at most."""
    caplog.set_level(logging.WARNING, logger="tiktok_gateway.webhooks")
    url = make_gateway(webhooks=WEBHOOKS)
    assert post_shopify(url, shopify_body(), secret="forged").status_code == 401
    unsigned = httpx.post(f"{url}/webhooks/shopify", content=shopify_body(),
                          headers={"X-Shopify-Topic": "orders/create"})
    assert unsigned.status_code == 401
    assert post_shopify(url, shopify_body(), topic="orders/updated").status_code == 200
    time.sleep(0.4)  # telemetry flush
    metrics = httpx.get(f"{url}/metrics").text
    assert "alice" not in metrics
    html = httpx.get(f"{url}/dashboard", auth=ADMIN).text
    row = re.search(r'<tr data-platform="shopify">(.*?)</tr>', html, re.S)
    assert row and re.search(r'class="num bad">2<', row.group(1)), html[-1500:]
    assert "orders/updated" in row.group(1)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["shopify webhook refused: its signature does not match (1 since the last "
                     "line); check [webhooks] shopify_secret against the platform's"]


def test_other_topics_are_acknowledged_and_ignored(make_gateway: Callable[..., str]) -> None:
    """Only the configured topics (orders/create and orders/paid by default) become events;
    another is acknowledged with the reason."""
    url = make_gateway(webhooks=WEBHOOKS)
    response = post_shopify(url, shopify_body(), topic="orders/updated")
    assert response.status_code == 200 and response.json()["ignored"] is True
    assert "orders/updated" in response.json()["reason"]


def test_unconfigured_webhooks_answer_404(make_gateway: Callable[..., str]) -> None:
    """Without a secret, the webhook endpoint is off."""
    url = make_gateway()
    assert post_shopify(url, shopify_body()).status_code == 404


def woo_body(status: str = "processing") -> bytes:
    """An order.created payload shaped like WooCommerce's documented order object."""
    return json.dumps({
        "id": 727, "number": "727", "status": status, "currency": "EUR", "total": "29.35",
        "date_created_gmt": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
        "date_paid_gmt": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
        "customer_id": 26, "customer_ip_address": "81.2.69.142",
        "customer_user_agent": "Mozilla/5.0 Woo",
        "billing": {"first_name": "John", "email": "john.doe@example.com",
                    "phone": "+44 20 7946 0958"},
        "meta_data": [{"id": 1, "key": "_ttp", "value": "2F7h37YkS1j57AYSKTI7IHhJPYH"}],
        "line_items": [{"id": 315, "name": "Woo Single #1", "product_id": 93, "variation_id": 0,
                        "quantity": 2, "sku": "WOO-1", "price": 3}],
    }).encode()


def post_woo(url: str, body: bytes, secret: str = WOO_SECRET) -> httpx.Response:
    return httpx.post(f"{url}/webhooks/woocommerce", content=body, headers={
        "X-WC-Webhook-Signature": sign(secret, body), "X-WC-Webhook-Topic": "order.created",
        "Content-Type": "application/json"})


def test_woocommerce_paid_order(make_gateway: Callable[..., str], sandbox_url: str) -> None:
    """A processing WooCommerce order becomes a purchase; a pending one is ignored."""
    url = make_gateway(webhooks=WEBHOOKS)
    pending = post_woo(url, woo_body("pending")).json()
    assert pending["ignored"] is True and "pending" in pending["reason"]
    assert post_woo(url, woo_body()).status_code == 202
    assert post_woo(url, woo_body(), secret="wrong").status_code == 401
    [event] = received(sandbox_url, 1)
    assert event["event_id"] == "727_CompletePayment"
    assert event["parsed"]["user"]["ttp"] == "2F7h37YkS1j57AYSKTI7IHhJPYH"
    assert event["parsed"]["user"]["phone"] == [sha256_hex("+442079460958")]


def test_woocommerce_ping_saves_the_webhook_and_keeps_nothing(make_gateway: Callable[..., str],
                                                               sandbox_url: str) -> None:
    """WooCommerce's unsigned ping on saving a webhook gets a 200 once a secret is set."""
    url = make_gateway(webhooks=WEBHOOKS)
    ping = httpx.post(f"{url}/webhooks/woocommerce", content=b"webhook_id=12",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert ping.status_code == 200 and "queued" not in ping.json()
    assert post_woo(url, woo_body()).status_code == 202
    assert len(received(sandbox_url, 1)) == 1  # the order only, not the ping


def test_unconfigured_webhooks_are_404(make_gateway: Callable[..., str]) -> None:
    """Without a secret, webhook routes say they are not configured, the ping included."""
    url = make_gateway()
    for path in ("/webhooks/shopify", "/webhooks/woocommerce"):
        response = httpx.post(url + path, content=b"webhook_id=12")
        assert response.status_code == 404 and "not configured" in response.json()["error"]


def test_ga4_measurement_protocol(make_gateway: Callable[..., str], sandbox_url: str) -> None:
    """GA4 MP bodies are accepted with a server key as api_secret and mapped."""
    url = make_gateway()
    body = {"client_id": "555.123", "user_id": "member-42", "events": [
        {"name": "add_to_cart", "params": {"currency": "USD", "value": 7.77,
                                           "items": [{"item_id": "SKU_12345", "price": 7.77,
                                                      "quantity": 1}]}},
        {"name": "purchase", "params": {"transaction_id": "T_12345", "currency": "USD",
                                        "value": 7.77}}]}
    assert httpx.post(f"{url}/mp/collect?api_secret=wrong", json=body).status_code == 401
    response = httpx.post(f"{url}/mp/collect?measurement_id=G-XXXX&api_secret={SERVER_KEY}",
                          json=body)
    assert response.status_code == 202 and response.json()["queued"] == 2
    events = {e["event"]: e for e in received(sandbox_url, 2)}
    assert events["CompletePayment"]["event_id"] == "T_12345_CompletePayment"
    assert events["AddToCart"]["parsed"]["user"]["external_id"] == [sha256_hex("member-42")]
    assert "ip" not in events["AddToCart"]["parsed"]["user"]  # not the sender's server IP


def test_snippet_is_served(make_gateway: Callable[..., str]) -> None:
    """/tt.js is served as JavaScript."""
    url = make_gateway()
    response = httpx.get(f"{url}/tt.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/javascript")
    assert "ttgw" in response.text and "sendBeacon" in response.text
    assert PIXEL and TOKEN  # the fixtures' pixel and token are the ones used above
