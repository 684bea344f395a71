"""The sandbox's Test Events page in a real headless Chromium."""

from __future__ import annotations

import time

import pytest
import requests

from tiktok_gateway.testing import running_sandbox
from tiktok_gateway.tiktok.schema import build_request

PIXEL = "C0EXAMPLE0PIXEL00001"


def test_test_events_appear_live_with_dropped_fields(chromium_path: str) -> None:
    """An event sent with a test code appears on the open page, with its dropped field shown."""
    playwright = pytest.importorskip("playwright.sync_api")
    with running_sandbox() as (url, _), playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page()
        page.goto(f"{url}/?pixel={PIXEL}&code=TEST42")
        page.wait_for_selector("#status")
        event = {"event": "CompletePayment", "event_time": int(time.time()), "event_id": "o-9",
                 "user": {"email": ["alice@example.com"], "phone": ["b" * 64]},
                 "properties": {"value": 12.5, "currency": "EUR"}}
        requests.post(f"{url}/open_api/v1.3/event/track/", headers={"Access-Token": "t" * 20},
                      json=build_request(PIXEL, [event], test_event_code="TEST42"), timeout=5)
        requests.post(f"{url}/open_api/v1.3/event/track/", headers={"Access-Token": "t" * 20},
                      json=build_request(PIXEL, [{**event, "event_id": "live"}]), timeout=5)
        row = page.wait_for_selector("tr.event-row", timeout=10_000)
        assert row is not None
        text = row.inner_text()
        assert "CompletePayment" in text and "test: TEST42" in text
        assert "12.5 EUR" in text
        assert "phone ✓ hashed" in text and "email ✓ hashed" not in text
        assert "data.0.user.email.0" in row.query_selector(".dropped-cell").inner_text()  # type: ignore[union-attr]
        page.wait_for_timeout(1200)  # one more poll: the live event must not appear here
        assert len(page.query_selector_all("tr.event-row")) == 1
        page.screenshot(path="test-results/sandbox-test-events.png", full_page=True)
        browser.close()
