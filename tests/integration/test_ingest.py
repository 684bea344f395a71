"""POST /v1/events over real HTTP: auth, limits, verdicts, filters, dedup, delivery."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import BROWSER_KEY, PIXEL, SERVER_KEY, SHOP_ORIGIN
from tiktok_gateway.identity import sha256_hex
from tiktok_gateway.testing import sample_event

AUTH = {"Authorization": f"Bearer {SERVER_KEY}"}


def post(url: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{url}/v1/events", json=body, headers={**AUTH, **(headers or {})},
                      timeout=10)


def received(sandbox_url: str, count: int, timeout: float = 10, **params: Any) -> list[dict[str, Any]]:
    """Wait until the sandbox holds `count` events; return them."""
    deadline = time.time() + timeout
    while True:
        events: list[dict[str, Any]] = httpx.get(f"{sandbox_url}/sandbox/events",
                                                 params=params).json()["events"]
        if len(events) >= count or time.time() > deadline:
            return events
        time.sleep(0.05)


def test_event_is_delivered_hashed_and_mapped(make_gateway: Callable[..., str],
                                              sandbox_url: str) -> None:
    """A purchase posted to the gateway reaches TikTok as CompletePayment with hashed PII."""
    url = make_gateway()
    response = post(url, sample_event())
    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "queued": 1, "duplicates": 0, "merged": 0,
                               "filtered": {},
                               "rejected": [], "warnings": []}
    [event] = received(sandbox_url, 1)
    assert event["event"] == "CompletePayment"
    assert event["event_id"] == "100045_CompletePayment"
    assert event["hashed_fields"] == ["email", "phone", "external_id"]
    assert event["parsed"]["user"]["email"] == [sha256_hex("alice.shopper@example.com")]
    assert event["dropped"] == []
    assert "alice" not in json.dumps(event).lower()


def test_missing_or_wrong_key_is_401(make_gateway: Callable[..., str]) -> None:
    """Without a known key nothing is accepted."""
    url = make_gateway()
    assert httpx.post(f"{url}/v1/events", json=sample_event()).status_code == 401
    wrong = post(url, sample_event(), {"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "ingest key" in wrong.json()["error"]


def test_browser_key_needs_an_allowed_origin(make_gateway: Callable[..., str]) -> None:
    """A browser key is accepted only from its origins, with CORS headers."""
    url = make_gateway()
    browser = {"Authorization": f"Bearer {BROWSER_KEY}"}
    denied = post(url, sample_event(), {**browser, "Origin": "https://evil.example"})
    assert denied.status_code == 403
    allowed = post(url, sample_event(), {**browser, "Origin": SHOP_ORIGIN})
    assert allowed.status_code == 202
    assert allowed.headers["access-control-allow-origin"] == SHOP_ORIGIN
    preflight = httpx.options(f"{url}/v1/events", headers={
        "Origin": SHOP_ORIGIN, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204
    assert "Authorization" in preflight.headers["access-control-allow-headers"]
    beacon = httpx.post(f"{url}/v1/events?key={BROWSER_KEY}", content=json.dumps(sample_event()),
                        headers={"Origin": SHOP_ORIGIN, "Content-Type": "text/plain"})
    assert beacon.status_code == 202


def test_browser_key_is_rate_limited_per_client(make_gateway: Callable[..., str]) -> None:
    """Past the per-minute limit a browser client gets 429, told when one more is allowed."""
    url = make_gateway()
    headers = {"Authorization": f"Bearer {BROWSER_KEY}", "Origin": SHOP_ORIGIN}
    answers = [post(url, {"event": "view_item", "event_id": str(i)}, headers)
               for i in range(22)]
    assert [a.status_code for a in answers] == [202] * 20 + [429, 429]
    # 20 a minute refill one request every 3 seconds.
    wait = int(answers[-1].headers["Retry-After"])
    assert 1 <= wait <= 3
    time.sleep(wait)
    assert post(url, {"event": "view_item", "event_id": "after"}, headers).status_code == 202


def test_body_and_batch_limits(make_gateway: Callable[..., str]) -> None:
    """Over 1 MiB or over 1,000 events gets 413 with the limit named."""
    url = make_gateway()
    big = {"event": "purchase", "properties": {"description": "x" * 1_100_000}}
    assert post(url, big).status_code == 413
    many = post(url, {"events": [{"event": "view_item"}] * 1001})
    assert many.status_code == 413 and "1000" in many.json()["error"]


def test_malformed_json_is_400(make_gateway: Callable[..., str]) -> None:
    """Broken JSON is a 400 that says so, never a 500."""
    url = make_gateway()
    response = httpx.post(f"{url}/v1/events", content=b'{"event": ', headers=AUTH)
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]


def test_rejections_name_index_and_field(make_gateway: Callable[..., str],
                                         sandbox_url: str) -> None:
    """Bad events are rejected with their index and field; good ones in the batch are queued."""
    url = make_gateway()
    batch = {"events": [sample_event(), {"event": "purchase", "properties": {"currency": "XX"}},
                        {"properties": {}}]}
    response = post(url, batch)
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 1
    assert [(r["index"], r["errors"][0]["field"]) for r in body["rejected"]] == [
        (1, "properties.currency"), (2, "event")]
    all_bad = post(url, {"events": [{"properties": {}}]})
    assert all_bad.status_code == 422 and all_bad.json()["accepted"] == 0


def test_old_events_are_refused(make_gateway: Callable[..., str]) -> None:
    """An event older than the age limit is rejected on event_time."""
    url = make_gateway()
    response = post(url, sample_event(event_time=int(time.time()) - 30 * 86400))
    assert response.status_code == 422
    assert response.json()["rejected"][0]["errors"][0]["field"] == "event_time"


def test_test_event_code_header(make_gateway: Callable[..., str], sandbox_url: str) -> None:
    """X-Test-Event-Code sends the events as test events, apart from live ones."""
    url = make_gateway()
    post(url, sample_event(), {"X-Test-Event-Code": "TEST555"})
    post(url, sample_event(event_id="live-1"))
    events = received(sandbox_url, 2)
    by_id = {e["event_id"]: e["test_event_code"] for e in events}
    assert by_id == {"100045_CompletePayment": "TEST555", "live-1": None}
    assert len({e["request_id"] for e in events}) == 2


def test_duplicates_are_dropped_at_ingest(make_gateway: Callable[..., str],
                                          sandbox_url: str) -> None:
    """The same event_id and event name again is counted as a duplicate and not sent."""
    url = make_gateway()
    assert post(url, sample_event()).json()["queued"] == 1
    again = post(url, sample_event()).json()
    assert (again["accepted"], again["queued"], again["duplicates"]) == (1, 0, 1)
    time.sleep(0.5)
    assert len(received(sandbox_url, 1)) == 1


def test_consent_and_name_filters(make_gateway: Callable[..., str], sandbox_url: str) -> None:
    """Denied consent and blocked names are dropped and counted by reason."""
    url = make_gateway(destinations=[{
        "name": "shop", "pixel_id": PIXEL, "access_token": "test-token-0123456789",
        "filters": {"block_events": ["view_item"]}}])
    batch = {"events": [sample_event(consent={"marketing": False}),
                        {"event": "view_item", "event_id": "v1"},
                        {"event": "add_to_cart", "event_id": "a1"}]}
    body = post(url, batch).json()
    assert body["filtered"] == {"consent": 1, "event_name": 1}
    assert body["queued"] == 1
    assert [e["event"] for e in received(sandbox_url, 1)] == ["AddToCart"]


def test_client_ip_and_user_agent_from_the_request(make_gateway: Callable[..., str],
                                                   sandbox_url: str) -> None:
    """A browser's IP and user agent are filled from the request; X-Forwarded-For only from
    trusted proxies."""
    url = make_gateway(server={"trusted_proxies": ["127.0.0.1/32"]})
    post(url, {"event": "view_item", "event_id": "v1"},
         {"User-Agent": "ShopBrowser/1.0", "X-Forwarded-For": "203.0.113.9, 127.0.0.1",
          "Authorization": f"Bearer {BROWSER_KEY}", "Origin": SHOP_ORIGIN})
    [event] = received(sandbox_url, 1)
    assert event["parsed"]["user"]["ip"] == "203.0.113.9"
    assert event["parsed"]["user"]["user_agent"] == "ShopBrowser/1.0"


def test_untrusted_forwarded_for_is_ignored(make_gateway: Callable[..., str],
                                            sandbox_url: str) -> None:
    """Without trusted proxies, a client cannot claim another IP (and the loopback address it
    comes from here is never the shopper's, so none is sent)."""
    url = make_gateway()
    post(url, {"event": "view_item", "event_id": "v1"}, {
        "X-Forwarded-For": "203.0.113.9", "Authorization": f"Bearer {BROWSER_KEY}",
        "Origin": SHOP_ORIGIN})
    [event] = received(sandbox_url, 1)
    assert "ip" not in event["parsed"].get("user", {})


def test_backpressure_503(make_gateway: Callable[..., str], sandbox_url: str) -> None:
    """Past the outbox limit, ingest answers 503 with Retry-After instead of growing."""
    httpx.post(f"{sandbox_url}/sandbox/faults", json={"outage_seconds": 30})
    url = make_gateway(storage={"url": "memory://", "max_pending": 3})
    codes = []
    for i in range(6):
        codes.append(post(url, {"event": "view_item", "event_id": f"e{i}"}).status_code)
        time.sleep(0.4)
    assert codes[:3] == [202, 202, 202] and 503 in codes[3:]
    ready = httpx.get(f"{url}/readyz")  # a load balancer sends traffic elsewhere meanwhile
    assert ready.status_code == 503
    assert any("the outbox is full" in p for p in ready.json()["problems"]), ready.json()


def test_status_endpoint_reports_tiktoks_answer(make_gateway: Callable[..., str],
                                                sandbox_url: str) -> None:
    """/v1/events/status shows the delivery state and TikTok's request_id."""
    url = make_gateway()
    post(url, sample_event())
    received(sandbox_url, 1)
    time.sleep(0.2)
    status = httpx.get(f"{url}/v1/events/status", params={"event_id": "100045_CompletePayment"},
                       headers=AUTH).json()
    [delivery] = status["deliveries"]
    assert delivery["state"] == "sent" and delivery["tiktok"]["code"] == 0
    assert httpx.get(f"{url}/v1/events/status?event_id=x").status_code == 401


def test_health_readiness_and_openapi(make_gateway: Callable[..., str]) -> None:
    """/healthz, /readyz and /openapi.json answer."""
    url = make_gateway()
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{url}/readyz").json()
    assert ready["status"] == "ready" and ready["demo"] is False
    spec = httpx.get(f"{url}/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert "Event" in spec["components"]["schemas"]
    assert set(spec["paths"]["/v1/events"]["post"]["responses"]) >= {"202", "401", "413", "503"}


@pytest.mark.parametrize("destinations", [[]])
def test_no_destination_is_a_config_error(destinations: list[Any], tmp_path: Any,
                                          sandbox_url: str) -> None:
    """A gateway with nothing to deliver to refuses to start, saying why."""
    from tests.conftest import gateway_config
    from tiktok_gateway import ConfigError
    from tiktok_gateway.config import settings_from_dict
    from tiktok_gateway.web.app import create_app

    settings = settings_from_dict(gateway_config(tmp_path, sandbox_url, destinations=destinations))
    with pytest.raises(ConfigError, match="destinations"):
        create_app(settings)


# Routes anyone may call: a probe, the docs, the metrics scraper, the browser snippet, and the
# CORS preflight a browser sends before its key can be checked.
PUBLIC = {("GET", "/"), ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/openapi.json"),
          ("GET", "/metrics"), ("GET", "/tt.js"), ("OPTIONS", "/v1/events")}
# Webhooks are signed, not keyed: each is sent as its platform would, with a topic.
WEBHOOK_HEADERS = {"X-Shopify-Topic": "orders/paid", "X-WC-Webhook-Topic": "order.updated"}


def test_every_other_route_refuses_a_stranger(make_gateway: Callable[..., str],
                                               tmp_path: Any, sandbox_url: str) -> None:
    """Each route of the app, but the public ones, answers 401 or 403 without credentials
    and with a wrong key or signature: a route added without a guard fails here."""
    from starlette.routing import Route

    from tests.conftest import gateway_config
    from tiktok_gateway.config import settings_from_dict
    from tiktok_gateway.web.app import create_app

    webhooks = {"shopify_secret": "shopify-secret-123", "woocommerce_secret": "woo-secret-456"}
    url = make_gateway(webhooks=webhooks)
    app = create_app(settings_from_dict(gateway_config(  # only to list its routes
        tmp_path, sandbox_url, webhooks=webhooks, storage={"url": "memory://"})))
    guarded = sorted({(method, route.path.replace("{id:int}", "1"))
                      for route in app.routes if isinstance(route, Route)
                      for method in route.methods or () if method != "HEAD"} - PUBLIC)
    assert ("POST", "/v1/events") in guarded and ("GET", "/dashboard") in guarded
    answers = {}
    for method, path in guarded:
        for credentials in ({}, {"Authorization": "Bearer wrong-key-000000",
                                 "X-Shopify-Hmac-Sha256": "d3Jvbmc=",
                                 "X-WC-Webhook-Signature": "d3Jvbmc="}):
            response = httpx.request(method, url + path, json={}, timeout=10,
                                     headers={**WEBHOOK_HEADERS, **credentials})
            answers[(method, path, bool(credentials))] = response.status_code
    assert len(guarded) >= 12
    # 429: the dashboard slows a client down after five wrong logins, a refusal as well.
    assert {k: v for k, v in answers.items() if v not in (401, 403, 429)} == {}


def test_routing_errors_are_json(make_gateway: Callable[..., str]) -> None:
    """An unknown path or method gets a JSON reason, and 405 lists the allowed methods."""
    url = make_gateway()
    missing = httpx.get(f"{url}/v1/nothing-here")
    assert missing.status_code == 404 and missing.json() == {"error": "Not Found"}
    wrong = httpx.request("DELETE", f"{url}/v1/events", headers=AUTH)
    assert wrong.status_code == 405 and wrong.json() == {"error": "Method Not Allowed"}
    assert "POST" in wrong.headers["allow"]
