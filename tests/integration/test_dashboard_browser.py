"""The dashboard in a real headless Chromium, filled by real traffic through the gateway."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN, CHROMIUM_ARGS, PIXEL, SERVER_KEY, TOKEN

SCREENSHOTS = Path(os.environ.get("TIKTOK_GATEWAY_SCREENSHOTS", "test-results/screenshots"))
AUTH = {"Authorization": f"Bearer {SERVER_KEY}"}


def post(url: str, body: Any, **headers: str) -> None:
    assert httpx.post(f"{url}/v1/events", json=body, headers={**AUTH, **headers},
                      timeout=10).status_code == 202


def traffic(url: str, sandbox_url: str) -> None:
    """A morning's worth of shop traffic, with a rate-limit spell."""
    events = []
    for i in range(24):
        user: dict[str, Any] = {"email": f"buyer{i}@example.com", "ip": "13.57.97.131",
                                "user_agent": "Mozilla/5.0"}
        if i % 3:
            user["phone"] = f"+1 213 555 {1000 + i}"
        if i % 2:
            user["ttclid"] = "E.C.P.abc" + str(i)
        events.append({"event": "purchase", "user": user, "properties": {
            "order_id": f"A{1000 + i}", "value": 20 + i, "currency": "USD",
            "items": [{"item_id": f"sku-{i}", "price": 20 + i, "quantity": 1}]}})
        events.append({"event": "add_to_cart", "event_id": f"atc-{i}",
                       "user": {"ttp": "2F7h37YkS1j57AYSKTI7IHhJPYH"} if i % 4 else {},
                       "properties": {"value": 20 + i, "currency": "USD"}})
    post(url, {"events": events})
    httpx.post(f"{sandbox_url}/sandbox/faults", json={"rate_limit_qps": 1})
    for i in range(4):
        post(url, {"event": "view_item", "event_id": f"v{i}"})
        time.sleep(0.2)
    httpx.post(f"{sandbox_url}/sandbox/faults", json={"rate_limit_qps": 0})


def test_dashboard_end_to_end(make_gateway: Callable[..., str], sandbox: tuple[str, Any],
                              chromium_path: str) -> None:
    """Log in, see every page fill, inspect an event, watch a test event live, replay a dead letter."""
    sync_api = pytest.importorskip("playwright.sync_api")
    sandbox_url, sandbox_obj = sandbox
    url = make_gateway()
    traffic(url, sandbox_url)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        anonymous = p.request.new_context()
        assert anonymous.get(f"{url}/dashboard").status == 401
        anonymous.dispose()
        context = browser.new_context(http_credentials={"username": ADMIN[0], "password": ADMIN[1]},
                                      viewport={"width": 1366, "height": 900})
        page = context.new_page()

        # Tag health fills with the traffic, including the 40100s.
        page.goto(f"{url}/dashboard?window=1h")
        deadline = time.time() + 15
        while page.inner_text("#delivered") != "52" and time.time() < deadline:
            page.wait_for_timeout(300)
            page.reload()
        assert page.inner_text("#received") == "52"
        assert "40100" in page.inner_text("table.errors")
        page.screenshot(path=str(SCREENSHOTS / "tag-health.png"), full_page=True)

        # Data quality: 24 purchases, all with email, two thirds with a phone.
        page.goto(f"{url}/dashboard/quality?window=1h")
        row = page.locator('tr[data-event="CompletePayment"]')
        assert row.locator('[data-field="email"]').inner_text() == "100%"
        assert row.locator('[data-field="phone"]').inner_text() == "67%"
        assert row.locator('[data-field="ttclid"]').inner_text() == "50%"
        page.screenshot(path=str(SCREENSHOTS / "data-quality.png"), full_page=True)

        # Inspector: search by order id, open the event, see in / out / answer.
        page.goto(f"{url}/dashboard/inspector")
        page.fill('input[name="order_id"]', "A1007")
        page.click("text=Search")
        page.click("tr.record a >> nth=0")
        assert "A1007_CompletePayment" in page.inner_text("#sent")
        assert "buyer7" not in page.inner_text("#inbound")
        assert '"code": 0' in page.inner_text("#answer")
        page.screenshot(path=str(SCREENSHOTS / "inspector.png"), full_page=True)

        # Test events: one arrives while the page is open.
        page.goto(f"{url}/dashboard/test-events")
        page.wait_for_selector("text=live")
        post(url, {"event": "purchase", "user": {"email": "tester@example.com", "phone": "12"},
                   "properties": {"order_id": "T-1", "value": "9.99", "currency": "eur"}},
             **{"X-Test-Event-Code": "TEST777"})
        row = page.wait_for_selector("tr.test-event", timeout=10_000)
        assert row is not None
        page.wait_for_selector("tr.test-event .tag.sent", timeout=10_000)
        text = row.inner_text()
        assert "CompletePayment" in text and "test TEST777" in text and "9.99 EUR" in text
        assert "email ✓ hashed" in text
        assert "user.phone: invalid, not sent by the gateway" in row.inner_text()
        page.screenshot(path=str(SCREENSHOTS / "test-events.png"), full_page=True)

        # Dead letters: a token problem dead-letters an event; fix it and replay from the page.
        sandbox_obj.state.tokens = {PIXEL: {"revoked-token"}}
        post(url, {"event": "purchase", "properties": {"order_id": "D-1", "value": 5,
                                                         "currency": "USD"}})
        page.goto(f"{url}/dashboard/dead-letters")
        deadline = time.time() + 10
        while not page.query_selector("tr.dead-letter") and time.time() < deadline:
            page.wait_for_timeout(300)
            page.reload()
        assert "40105" in page.inner_text("tr.dead-letter .reason")
        page.screenshot(path=str(SCREENSHOTS / "dead-letters.png"), full_page=True)
        sandbox_obj.state.tokens = {PIXEL: {TOKEN}}
        page.click("button.replay-one")
        assert "Queued 1 event(s) again" in page.inner_text("#replayed")
        deadline = time.time() + 10
        while not any(e.event_id == "D-1_CompletePayment" for e in sandbox_obj.state.events):
            assert time.time() < deadline, "the replayed event did not arrive"
            time.sleep(0.1)
        browser.close()


HOSTILE_ID = "\u202e<img src=x onerror=alert(1)>" + "W" * 170  # RTL override, HTML, 199 long


def test_every_page_fits_a_phone_and_isolates_hostile_values(
        make_gateway: Callable[..., str], sandbox: tuple[str, Any], chromium_path: str) -> None:
    """At 390 px no page scrolls sideways (tables scroll in their own box); an order id with
    a right-to-left override, HTML and 199 characters neither runs, widens nor reverses the
    page; a filtered and a rejected event are found by the search; the status line and the
    live/test switch are there."""
    from playwright import sync_api

    url = make_gateway()
    post(url, {"events": [  # 202: one queued, one filtered
        {"event": "purchase", "properties": {"order_id": HOSTILE_ID, "value": 5, "currency": "USD"},
         "user": {"email": "phone.user@example.com"}},
        {"event": "purchase", "consent": {"marketing": False},
         "properties": {"order_id": "C-1", "value": 5, "currency": "USD"}}]},
         **{"X-Test-Event-Code": "TEST42"})  # the hostile one on the test-events page too
    rejected = httpx.post(f"{url}/v1/events", headers=AUTH, json={
        "event": "purchase", "properties": {"order_id": "R-1", "value": 5, "currency": "XXXX"}})
    assert rejected.status_code == 422
    time.sleep(2.5)  # a telemetry flush: filtered and rejected records are written with it
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        context = browser.new_context(http_credentials={"username": ADMIN[0], "password": ADMIN[1]},
                                      viewport={"width": 390, "height": 844})
        page = context.new_page()
        alerts: list[str] = []
        page.on("dialog", lambda d: (alerts.append(d.message), d.dismiss()))
        for path in ("/dashboard?window=15m", "/dashboard/quality", "/dashboard/inspector",
                     "/dashboard/inspector?q=c-1", "/dashboard/test-events",
                     "/dashboard/dead-letters"):
            page.goto(f"{url}{path}")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 391, f"{path} is {width} px wide at 390"
            heading = page.inner_text("h1")
            assert heading == heading.strip() and "\u202e" not in heading, path
        page.goto(f"{url}/dashboard/test-events")
        page.wait_for_selector("tr.test-event")
        assert page.evaluate("document.documentElement.scrollWidth") <= 391
        page.goto(f"{url}/dashboard/inspector?q=c-1")
        assert "filtered" in page.inner_text("#records") and "consent" in page.inner_text("#records")
        page.goto(f"{url}/dashboard/inspector?order_id=r-1")
        assert "properties.currency" in page.inner_text("#records")
        page.goto(f"{url}/dashboard/inspector?q=%E2%80%AE")
        assert "WWWW" in page.inner_text("#records") and not alerts
        page.goto(f"{url}/dashboard?mode=test")
        assert page.inner_text("#status") and "on" in page.get_attribute(
            ".modes a:text('test')", "class")
        page.screenshot(path=str(SCREENSHOTS / "tag-health-phone.png"), full_page=True)
        browser.close()
