"""Pixel and server pairing in a real Chromium: shop pages on another origin whose TikTok
pixel loads, is blocked, never loads or is held back for consent, and the backend's copies
of the same orders. The pairing figures must be what the test arranged."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from tests.conftest import ADMIN, BROWSER_KEY, CHROMIUM_ARGS, PIXEL, SERVER_KEY
from tiktok_gateway.testing import serve_in_thread

# TikTok's base code, as its Events Manager hands it out, then the page's own pixel call.
PAGE = """<!doctype html><html><head><title>Thanks</title>
<script src="{gateway}/tt.js" data-key="{key}" data-pixel-wait="1500"></script>
<script>
!function (w, d, t) {
  w.TiktokAnalyticsObject=t;var ttq=w[t]=w[t]||[];
  ttq.methods=["page","track","identify","instances","debug","on","off","once","ready","alias",
    "group","enableCookie","disableCookie","holdConsent","revokeConsent","grantConsent"],
  ttq.setAndDefer=function(t,e){t[e]=function(){t.push([e].concat(Array.prototype.slice.call(arguments,0)))}};
  for(var i=0;i<ttq.methods.length;i++)ttq.setAndDefer(ttq,ttq.methods[i]);
  ttq.instance=function(t){for(var e=ttq._i[t]||[],n=0;n<ttq.methods.length;n++)
    ttq.setAndDefer(e,ttq.methods[n]);return e},
  ttq.load=function(e,n){var r="https://analytics.tiktok.com/i18n/pixel/events.js",o=n&&n.partner;
    ttq._i=ttq._i||{},ttq._i[e]=[],ttq._i[e]._u=r,ttq._t=ttq._t||{},ttq._t[e]=+new Date,
    ttq._o=ttq._o||{},ttq._o[e]=n||{};n=document.createElement("script");
    n.type="text/javascript",n.async=!0,n.src=r+"?sdkid="+e+"&lib="+t;
    e=document.getElementsByTagName("script")[0];e.parentNode.insertBefore(n,e)};
  {consent}
  ttq.load("{pixel}");
  ttq.page();
}(window, document, "ttq");
ttq.track("{event}", {order_id: "{order}", value: 20, currency: "USD"}, {event_id: "{event_id}"});
</script></head><body>Thank you</body></html>"""

# A stand-in for TikTok's pixel library: it puts real methods in place of the stub's and
# sends what the stub queued (here: records it).
LIBRARY = """(function () {
  var ttq = window.ttq; window.pixelSent = [];
  ["page", "track", "identify", "holdConsent", "grantConsent", "revokeConsent"].forEach(function (m) {
    ttq[m] = function () { window.pixelSent.push([m].concat([].slice.call(arguments))); };
  });
  for (var i = 0; i < ttq.length; i++) window.pixelSent.push(ttq[i]);
  ttq.length = 0;
})();"""

IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"

# (order, pixel event, pixel event_id, what happens to the pixel's script, consent held)
VISITS = [
    ("A1", "CompletePayment", "A1_CompletePayment", "load", False),
    ("A2", "CompletePayment", "A2_CompletePayment", "load", False),
    ("B1", "CompletePayment", "B1_CompletePayment", "abort", False),
    ("B2", "CompletePayment", "B2_CompletePayment", "abort", False),
    ("L1", "CompletePayment", "L1_CompletePayment", "hang", False),
    ("C1", "CompletePayment", "C1_CompletePayment", "load", True),
    ("M1", "CompletePayment", "M1-browser-id", "load", False),  # another event_id: mismatched
    ("N1", "Purchase", "N1_CompletePayment", "load", False),  # another name: mismatched
    ("P1", "CompletePayment", "P1_CompletePayment", "load", False),  # the backend never sends it
]
BACKEND_ORDERS = ["A1", "A2", "B1", "B2", "L1", "C1", "M1", "N1", "D1"]  # D1: no pixel page


def test_pairing_of_pixel_and_server(make_gateway: Callable[..., str], sandbox_url: str,
                                     chromium_path: str) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")

    def thanks(request: Request) -> HTMLResponse:
        q = request.query_params
        consent = "ttq.holdConsent();" if q["consent"] == "1" else ""
        html = PAGE
        for key, value in {"{gateway}": request.app.state.gateway, "{key}": BROWSER_KEY,
                           "{pixel}": PIXEL, "{event}": q["event"], "{order}": q["order"],
                           "{event_id}": q["event_id"], "{consent}": consent}.items():
            html = html.replace(key, value)
        return HTMLResponse(html)

    shop = Starlette(routes=[Route("/thanks", thanks)])
    with serve_in_thread(shop) as shop_url:
        gateway = make_gateway(keys=[
            {"name": "backend", "secret": SERVER_KEY, "kind": "server"},
            {"name": "web", "secret": BROWSER_KEY, "kind": "browser",
             "allowed_origins": [shop_url]}])
        shop.state.gateway = gateway
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
            context = browser.new_context(user_agent=IPHONE)
            for order, event, event_id, script, consent in VISITS:
                page = context.new_page()

                page.route("https://analytics.tiktok.com/**", pixel_library(script))
                page.goto(f"{shop_url}/thanks?order={order}&event={event}&event_id={event_id}"
                          f"&consent={int(consent)}", wait_until="domcontentloaded")
                if script == "load":
                    page.wait_for_function("window.pixelSent && window.pixelSent.length > 0")
                    if not consent:
                        sent = page.evaluate("window.pixelSent")
                        assert ["track", event, {"order_id": order, "value": 20,
                                                 "currency": "USD"}, {"event_id": event_id}] in sent
                if script == "hang":  # reported once data-pixel-wait has passed
                    page.wait_for_function("ttgw.pixelStatus().reported === 1", timeout=5000)
                else:  # reported when the page is left
                    page.wait_for_function("ttgw.pixelStatus().waiting === 0")
                page.close(run_before_unload=True)  # pagehide: the beacon goes now

            for order in BACKEND_ORDERS:  # the shop's backend, after checkout
                response = httpx.post(f"{gateway}/v1/events", headers={
                    "Authorization": f"Bearer {SERVER_KEY}"}, json={
                    "event": "purchase", "properties": {"order_id": order, "value": 20,
                                                        "currency": "USD"},
                    "user": {"email": f"{order.lower()}@example.com", "user_agent": FIREFOX}})
                assert response.status_code == 202, response.text

            expected = {"both": 2, "server_only": 5, "pixel_only": 1, "mismatched": 2,
                        "server_only_causes": {"blocked": 2, "not_loaded": 1, "consent": 1,
                                               "absent": 1}}
            # The browser stays open until the figures are in: closing it at once would drop
            # the last page's beacon, which a real browser sends after the page has gone.
            answer = wait_for_pairing(gateway, expected)
            browser.close()
        assert answer["events"]["CompletePayment"] == expected
        assert set(answer["events"]) == {"CompletePayment"}
        assert answer["window"]["end"] - answer["window"]["start"] == 7 * 86400

        detail = httpx.get(f"{gateway}/dashboard/api/pairing?window=1h&breakdown=1",
                           auth=ADMIN).json()
        by = detail["server_only_by"]
        assert by["browser"] == {"Mobile Safari 17": 4, "Firefox 133": 1}
        assert by["os"] == {"iOS 17": 4, "Windows 10": 1}
        assert sum(by["load"].values()) == 5 and by["load"].get("unknown") == 1

        # The dashboard says the same, and the inspector shows both legs side by side.
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
            admin = browser.new_context(http_credentials={"username": ADMIN[0],
                                                          "password": ADMIN[1]})
            page = admin.new_page()
            page.goto(f"{gateway}/dashboard/pairing")
            shown = {i: page.inner_text(f"#{i}") for i in ("both", "server-only", "pixel-only",
                                                           "mismatched", "pairing-rate")}
            assert shown == {"both": "2", "server-only": "5", "pixel-only": "1",
                             "mismatched": "2", "pairing-rate": "50%"}
            assert page.inner_text("#headline").startswith(
                "In this window the server leg recovered 5 purchase(s) the pixel lost (2 blocked, "
                "1 not loaded, 1 consent, 1 absent); 2 reached TikTok on both legs")
            assert "blocked" in page.inner_text("#by-cause")
            assert "Mobile Safari 17" in page.inner_text("#by-browser")
            [found] = httpx.get(f"{gateway}/dashboard/api/events", params={"order_id": "M1"},
                                auth=ADMIN).json()["events"]
            page.goto(f"{gateway}/dashboard/inspector/{found['record_id']}")
            legs = page.inner_text("#legs")
            assert "M1_CompletePayment" in legs and "M1-browser-id" in legs
            assert "same order, other event_id" in legs and "loaded" in legs
            assert page.locator("#legs td.bad").count() == 1  # the other event_id, marked
            browser.close()

        # The pixel legs are evidence only: TikTok got the backend's nine events and no more.
        arrived = httpx.get(f"{sandbox_url}/sandbox/events").json()["events"]
        assert sorted(e["event_id"] for e in arrived) == sorted(
            f"{o}_CompletePayment" for o in BACKEND_ORDERS)


def pixel_library(script: str) -> Callable[[Any], None]:
    """How the request for TikTok's pixel library goes: it loads, is aborted (an ad blocker),
    or hangs unanswered (a slow network)."""
    def answer(route: Any) -> None:
        if script == "load":
            route.fulfill(body=LIBRARY, content_type="application/javascript")
        elif script == "abort":
            route.abort()

    return answer


def wait_for_pairing(gateway: str, expected: dict[str, Any], timeout: float = 10
                     ) -> dict[str, Any]:
    deadline = time.time() + timeout
    while True:
        answer: dict[str, Any] = httpx.get(f"{gateway}/dashboard/api/pairing?window=7d",
                                           auth=ADMIN).json()
        if answer["events"].get("CompletePayment") == expected or time.time() > deadline:
            return answer
        time.sleep(0.2)
