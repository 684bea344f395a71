"""Mapping GA4 Measurement Protocol bodies and shop orders to inbound events."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from tiktok_gateway import InvalidEvent, TransformOptions, transform
from tiktok_gateway.sources import verify_signature
from tiktok_gateway.sources.ga4 import ga4_events
from tiktok_gateway.sources.shopify import shopify_order
from tiktok_gateway.sources.woocommerce import woocommerce_order

EMAIL_HASH = hashlib.sha256(b"ga4.user@example.com").hexdigest()


def test_ga4_purchase() -> None:
    """GA4 names, transaction_id, items and hashed user_data become a complete purchase."""
    [raw] = ga4_events({
        "client_id": "123.456", "user_id": "customer-7", "timestamp_micros": 1795500000000000,
        "user_data": {"sha256_email_address": [EMAIL_HASH]},
        "events": [{"name": "purchase", "params": {
            "transaction_id": "T-1001", "value": 59.9, "currency": "EUR",
            "page_location": "https://shop.example.com/thanks",
            "items": [{"item_id": "SKU-1", "item_name": "socks", "price": 29.95, "quantity": 2}]}}],
    })
    item = transform(raw, TransformOptions(max_age_seconds=10**10, max_future_seconds=10**10))
    assert item.data["event"] == "CompletePayment"
    assert item.data["event_id"] == "T-1001_CompletePayment"
    assert item.data["event_time"] == 1795500000
    assert item.data["user"]["email"] == [EMAIL_HASH]
    assert item.data["user"]["external_id"] == [hashlib.sha256(b"customer-7").hexdigest()]
    assert item.data["properties"]["contents"][0]["content_id"] == "SKU-1"
    assert item.data["page"]["url"] == "https://shop.example.com/thanks"


def test_ga4_needs_events() -> None:
    """A body without an events list is refused with the field named."""
    with pytest.raises(InvalidEvent) as exc:
        ga4_events({"client_id": "1"})
    assert exc.value.errors[0].field == "events"


def sign(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def test_signature_verification() -> None:
    """Only base64(HMAC-SHA256(secret, body)) of this exact body passes."""
    body = b'{"id": 1}'
    assert verify_signature("s3cret", body, sign("s3cret", body))
    assert not verify_signature("s3cret", body + b" ", sign("s3cret", body))
    assert not verify_signature("other", body, sign("s3cret", body))
    assert not verify_signature("s3cret", body, None)


def test_shopify_order_mapping() -> None:
    """Email, phone, customer id, client details, line items and note attributes are used."""
    raw = shopify_order({
        "id": 820982911946154508, "email": "jon@example.com", "phone": "+13125551212",
        "total_price": "199.65", "currency": "USD", "created_at": "2026-11-24T10:00:00-05:00",
        "customer": {"id": 115310627314723954},
        "client_details": {"browser_ip": "216.191.105.146", "user_agent": "Mozilla/5.0"},
        "note_attributes": [{"name": "ttclid", "value": "E.C.P.abc"}],
        "line_items": [{"sku": "IPOD2008PINK", "title": "IPod Nano", "price": "199.00",
                        "quantity": 1}],
    })
    assert raw["properties"]["order_id"] == "820982911946154508"
    assert raw["user"]["external_id"] == "115310627314723954"
    assert raw["user"]["ttclid"] == "E.C.P.abc"
    assert raw["properties"]["items"][0] == {"item_id": "IPOD2008PINK", "item_name": "IPod Nano",
                                             "price": "199.00", "quantity": 1}


def test_woocommerce_order_mapping() -> None:
    """Billing email and phone, customer, IP, user agent and line items are used."""
    raw = woocommerce_order({
        "id": 727, "status": "processing", "currency": "GBP", "total": "29.35",
        "date_created_gmt": "2026-11-24T09:00:00", "customer_id": 26,
        "billing": {"email": "john.doe@example.com", "phone": "(555) 555-5555"},
        "customer_ip_address": "81.2.69.142", "customer_user_agent": "Mozilla/5.0",
        "line_items": [{"product_id": 93, "sku": "", "name": "Woo Single #1", "price": 3,
                        "quantity": 2}],
    })
    assert raw["event_time"] == "2026-11-24T09:00:00Z"
    assert raw["user"]["external_id"] == "26"
    assert raw["properties"]["items"][0]["item_id"] == "93"
