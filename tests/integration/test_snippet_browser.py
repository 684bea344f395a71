"""The browser snippet in a real Chromium: ttclid, _ttp, and one event_id for both legs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from tests.conftest import BROWSER_KEY, CHROMIUM_ARGS
from tiktok_gateway.testing import serve_in_thread

PAGE = """<!doctype html><html><head><title>Shop</title>
<script>
  // A stand-in for TikTok's pixel: records what the page asks it to track.
  window.ttq = {calls: [], track: function (name, props, opts) { this.calls.push([name, props, opts]); }};
</script>
<script src="{gateway}/tt.js" data-key="{key}"></script>
</head><body><button id="buy">Buy</button>
<script>
  document.getElementById("buy").onclick = function () {
    window.lastId = ttgw.track("purchase", {order_id: "W-1001", value: 42.5, currency: "USD",
                                            contents: [{content_id: "sku-9", quantity: 1, price: 42.5}]},
                               {user: {email: "shopper@example.com"}});
  };
</script></body></html>"""


def test_purchase_from_the_browser(make_gateway: Callable[..., str], sandbox_url: str,
                                   chromium_path: str) -> None:
    """Landing with ttclid, then a purchase: both legs share the event_id; the server leg has it all."""
    sync_api = pytest.importorskip("playwright.sync_api")
    def shop_page(request: Any) -> HTMLResponse:
        return HTMLResponse(PAGE.replace("{gateway}", request.app.state.gateway)
                            .replace("{key}", BROWSER_KEY))

    shop_app = Starlette(routes=[Route("/", shop_page), Route("/thanks", shop_page)])
    with serve_in_thread(shop_app) as shop_url:
        gateway_url = make_gateway(keys=[
            {"name": "web", "secret": BROWSER_KEY, "kind": "browser",
             "allowed_origins": [shop_url]}])
        shop_app.state.gateway = gateway_url
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
            context = browser.new_context(user_agent="ShopperBrowser/1.0")
            context.add_cookies([{"name": "_ttp", "value": "2F7h37YkS1j57AYSKTI7IHhJPYH",
                                  "url": shop_url}])
            page = context.new_page()
            page.goto(f"{shop_url}/?ttclid=E.C.P.landing42")
            # The cookie must carry ttclid across pages; the email in this URL never leaves it.
            page.goto(f"{shop_url}/thanks?step=done&email=shopper%40example.com")
            page.click("#buy")
            event_id = page.evaluate("window.lastId")
            calls: list[Any] = page.evaluate("window.ttq.calls")
            cookies = {c["name"]: c for c in context.cookies()}
            browser.close()
    assert event_id == "W-1001_CompletePayment"
    assert calls == [["CompletePayment", {"order_id": "W-1001", "value": 42.5, "currency": "USD",
                                          "contents": [{"content_id": "sku-9", "quantity": 1,
                                                        "price": 42.5}]},
                      {"event_id": "W-1001_CompletePayment"}]]
    assert cookies["ttgw_ttclid"]["value"] == "E.C.P.landing42"
    assert cookies["ttgw_ttclid"]["expires"] > time.time() + 6 * 86400
    events = arrived(sandbox_url)
    [event] = events
    user = event["parsed"]["user"]
    assert event["event_id"] == event_id
    assert user["ttclid"] == "E.C.P.landing42"
    assert user["ttp"] == "2F7h37YkS1j57AYSKTI7IHhJPYH"
    assert user["user_agent"] == "ShopperBrowser/1.0"
    assert "ip" not in user  # the page is on loopback here: never a shopper's address
    assert event["parsed"]["page"]["url"].endswith("/thanks?step=done")
    assert event["hashed_fields"] == ["email"]


def open_shop_page(html: str, make_gateway: Callable[..., str], chromium_path: str,
                   after_load: Callable[[Any], None]) -> list[str]:
    """Serve `html` as a shop page (with a gateway whose browser key allows it), open it in
    Chromium, run `after_load`, and give half a second for beacons; the page's errors."""
    sync_api = pytest.importorskip("playwright.sync_api")

    def page_html(request: Any) -> HTMLResponse:
        return HTMLResponse(html.replace("{gateway}", request.app.state.gateway)
                            .replace("{key}", BROWSER_KEY))

    shop_app = Starlette(routes=[Route("/", page_html)])
    errors: list[str] = []
    with serve_in_thread(shop_app) as shop_url:
        shop_app.state.gateway = make_gateway(keys=[
            {"name": "web", "secret": BROWSER_KEY, "kind": "browser",
             "allowed_origins": [shop_url]}])
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(shop_url)
            after_load(page)
            page.wait_for_timeout(500)
            browser.close()
    return errors


def arrived(sandbox_url: str, timeout: float = 10) -> list[dict[str, Any]]:
    """The sandbox's events, once any has arrived (or none after `timeout`)."""
    deadline = time.time() + timeout
    events: list[dict[str, Any]] = []
    while not events and time.time() < deadline:
        events = httpx.get(f"{sandbox_url}/sandbox/events").json()["events"]
        time.sleep(0.1)
    return events


CONSENT_PAGE = """<!doctype html><html><head>
<script src="{gateway}/tt.js" data-key="{key}" data-consent="denied"></script></head><body>
<script>
  window.first = ttgw.track("add_to_cart", {value: 1, currency: "USD"}, {event_id: "before-consent"});
  ttgw.consent(true);
  window.second = ttgw.track("add_to_cart", {value: 1, currency: "USD"}, {event_id: "after-consent"});
</script></body></html>"""


def test_consent_flag(make_gateway: Callable[..., str], sandbox_url: str,
                      chromium_path: str) -> None:
    """With data-consent="denied", nothing is sent until ttgw.consent(true)."""
    def after_load(page: Any) -> None:
        page.wait_for_function("window.second === 'after-consent'")

    open_shop_page(CONSENT_PAGE, make_gateway, chromium_path, after_load)
    events = arrived(sandbox_url)
    time.sleep(0.5)
    events = httpx.get(f"{sandbox_url}/sandbox/events").json()["events"]
    assert [e["event_id"] for e in events] == ["after-consent"]


ASYNC_PAGE = """<!doctype html><html><head>
<script>window.ttgw = window.ttgw || {q: [], track: function () { window.ttgw.q.push(arguments); }};</script>
<script src="{gateway}/tt.js" data-key="{key}" async></script></head><body>
<script>
  // Runs before the async snippet has loaded: the stub queues the call.
  ttgw.track("purchase", {order_id: "Q-1", value: 5, currency: "USD"});
</script></body></html>"""


def test_a_call_made_before_the_async_snippet_loads_is_queued(
        make_gateway: Callable[..., str], sandbox_url: str, chromium_path: str) -> None:
    """The documented stub: with `async`, an inline ttgw.track before tt.js has loaded is
    kept in `ttgw.q` and sent once it loads, not lost to "ttgw is not defined"."""
    def after_load(page: Any) -> None:
        page.wait_for_function("window.ttgw && window.ttgw.version === '1'")

    errors = open_shop_page(ASYNC_PAGE, make_gateway, chromium_path, after_load)
    assert errors == []
    events = arrived(sandbox_url)
    assert [e["event_id"] for e in events] == ["Q-1_CompletePayment"]
