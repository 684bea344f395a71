"""What a stranger or a bad day can send: each is bounded, refused clearly, or survived."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN, BROWSER_KEY, PIXEL, SERVER_KEY, SHOP_ORIGIN, TOKEN
from tiktok_gateway import ConfigError
from tiktok_gateway.config import settings_from_dict
from tiktok_gateway.testing import sample_event

SERVER = {"Authorization": f"Bearer {SERVER_KEY}"}
BROWSER = {"Authorization": f"Bearer {BROWSER_KEY}", "Origin": SHOP_ORIGIN}
Make = Callable[..., str]


def post(url: str, body: Any, headers: dict[str, str] = SERVER, path: str = "/v1/events") -> httpx.Response:
    return httpx.post(url + path, json=body, headers=headers, timeout=10)


def sandbox_events(sandbox_url: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = httpx.get(f"{sandbox_url}/sandbox/events").json()["events"]
    return events


def eventually(check: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def delivery(**settings: Any) -> dict[str, Any]:
    return {"linger_ms": 10, "retry_base_seconds": 0.05, "retry_max_seconds": 0.5,
            "merge_window_seconds": 0, **settings}


def test_a_huge_retry_after_does_not_stop_delivery(make_gateway: Make, sandbox_url: str) -> None:
    """`Retry-After: 1e308` on a 40100 is capped: delivery resumes once TikTok does."""
    httpx.post(f"{sandbox_url}/sandbox/faults", json={"rate_limit_qps": 0.001, "retry_after": "1e308"})
    url = make_gateway(delivery=delivery(max_retry_after_seconds=1))
    for i in range(3):
        assert post(url, {"event": "view_item", "event_id": f"ra-{i}"}).status_code == 202
        time.sleep(0.3)
    httpx.delete(f"{sandbox_url}/sandbox/faults")
    assert eventually(lambda: {e["event_id"] for e in sandbox_events(sandbox_url)}
                      >= {"ra-0", "ra-1", "ra-2"})


def test_readyz_says_when_delivery_is_paused(make_gateway: Make, sandbox_url: str) -> None:
    """A long pause after TikTok's rate limit makes /readyz answer 503 with the reason."""
    httpx.post(f"{sandbox_url}/sandbox/faults", json={"rate_limit_qps": 0.001, "retry_after": "60"})
    url = make_gateway(delivery=delivery())
    post(url, {"event": "view_item", "event_id": "p-0"})
    post(url, {"event": "view_item", "event_id": "p-1"})

    def paused() -> bool:
        answer = httpx.get(f"{url}/readyz")
        return answer.status_code == 503 and "paused" in " ".join(answer.json()["problems"])

    assert eventually(paused)


def test_a_proxy_page_in_front_of_tiktok_is_retried_not_split() -> None:
    """A CDN's 403 page or a redirect says nothing of the events: retried, never dead-lettered."""
    import asyncio

    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    from tiktok_gateway.dispatch import Dispatcher, DispatchSettings, Sender
    from tiktok_gateway.outbox import NewEvent, open_store
    from tiktok_gateway.ratelimit import RateLimiter
    from tiktok_gateway.retry import RetryPolicy
    from tiktok_gateway.tiktok.client import TikTokClient

    hits: list[int] = []

    async def cdn(request: Any) -> HTMLResponse:
        hits.append(1)
        return HTMLResponse("<h1>403 Forbidden</h1><p>cloudfront</p>", 403)

    async def run() -> tuple[int, int]:
        app = Starlette(routes=[Route("/open_api/v1.3/event/track/", cdn, methods=["POST"])])
        client = TikTokClient("t", base_url="http://cdn", transport=httpx.ASGITransport(app=app))
        store = open_store("memory://")
        now = int(time.time())
        await store.outbox.put([NewEvent("shop", "ViewContent", str(i), now, "{}") for i in range(8)])
        dispatcher = Dispatcher(store.outbox, {"shop": Sender("shop", PIXEL, client, RateLimiter(100))},
                                RetryPolicy(base=10), DispatchSettings(linger=0, workers=1))
        await dispatcher.drain_once()
        await client.aclose()
        return len(hits), (await store.records.stats()).pending

    requests, pending = asyncio.run(run())
    assert requests == 1 and pending == 8


def test_a_misspelled_token_variable_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A token reference that does not resolve stops start-up; it never becomes demo mode."""
    from tiktok_gateway.gateway import Gateway

    monkeypatch.delenv("TIKTOK_ACESS_TOKEN", raising=False)
    settings = settings_from_dict({"storage": {"url": "memory://"}, "destinations": [
        {"name": "shop", "pixel_id": PIXEL, "access_token": "env:TIKTOK_ACESS_TOKEN"}]})
    with pytest.raises(ConfigError, match="never falls back to demo mode"):
        Gateway.from_settings(settings)
    assert Gateway.from_settings(settings, demo=True).demo  # --demo, said out loud
    unconfigured = settings_from_dict({"storage": {"url": "memory://"}, "destinations": [
        {"name": "shop", "pixel_id": PIXEL, "access_token": ""}]})
    assert Gateway.from_settings(unconfigured).demo


def test_the_demo_sandbox_is_the_admins(make_gateway: Make) -> None:
    """In demo mode the sandbox's pages and fault switches need the admin login."""
    url = make_gateway(destinations=[{"name": "shop", "pixel_id": PIXEL, "access_token": ""}])
    assert httpx.get(f"{url}/tiktok-sandbox/").status_code == 401
    assert httpx.post(f"{url}/tiktok-sandbox/sandbox/faults", json={"error_rate": 1}).status_code == 401
    assert httpx.get(f"{url}/tiktok-sandbox/", auth=ADMIN).status_code == 200


def test_server_keys_only_in_the_header(make_gateway: Make, sandbox_url: str) -> None:
    """A server key in the URL is refused (URLs are logged); a browser key there still works."""
    url = make_gateway()
    refused = httpx.post(f"{url}/v1/events?key={SERVER_KEY}", json=sample_event(), timeout=10)
    assert refused.status_code == 401 and "URL" in refused.json()["error"]
    beacon = httpx.post(f"{url}/v1/events?key={BROWSER_KEY}", json={"event": "view_item"},
                        headers={"Origin": SHOP_ORIGIN}, timeout=10)
    assert beacon.status_code == 202


def test_admin_parameters_are_validated(make_gateway: Make, sandbox: tuple[str, Any]) -> None:
    """A replay id that is not a record number is refused, never "replay everything"; an
    out-of-range record is not found, never a 500."""
    url = make_gateway()
    sandbox[1].state.tokens = {PIXEL: {"not-our-token"}}  # so that the event is dead-lettered
    post(url, sample_event())
    assert eventually(lambda: 'class="dead-letter"' in httpx.get(
        f"{url}/dashboard/dead-letters", auth=ADMIN).text)
    with httpx.Client(base_url=url, auth=ADMIN) as browser:
        page = browser.get("/dashboard/dead-letters").text
        csrf = page.split('name="csrf" value="')[1].split('"')[0]
        for bad in ("abc", "1e3", str(10**23)):
            answer = browser.post("/dashboard/dead-letters/replay", data={"csrf": csrf, "id": bad})
            assert answer.status_code == 400, bad
    assert "40105" in httpx.get(f"{url}/dashboard/dead-letters", auth=ADMIN).text  # still dead
    assert httpx.get(f"{url}/dashboard/inspector/{10**23}", auth=ADMIN).status_code == 200


def test_values_and_ids_are_bounded(make_gateway: Make, sandbox_url: str) -> None:
    """Infinity, 1e309 and 1e308 are refused naming the field; -0 goes as 0; an order id that
    would make an event_id past 256 characters is refused; GA4 takes at most 1,000 events."""
    url = make_gateway()
    for value in ("Infinity", "1e309", 1e308):
        answer = post(url, {"event": "purchase", "event_id": "v", "properties": {
            "value": value, "currency": "USD"}})
        assert answer.status_code == 422
        assert answer.json()["rejected"][0]["errors"][0]["field"] == "properties.value"
    long_order = post(url, {"event": "purchase", "properties": {"order_id": "9" * 300}})
    assert long_order.json()["rejected"][0]["errors"][0]["field"] == "properties.order_id"
    assert post(url, {"event": "view_item", "event_id": "zero", "properties": {
        "value": -0.0, "currency": "USD"}}).status_code == 202
    assert eventually(lambda: bool(sandbox_events(sandbox_url)))
    [event] = sandbox_events(sandbox_url)
    assert str(event["parsed"]["properties"]["value"]) == "0.0"
    many = {"client_id": "1", "events": [{"name": "view_item"}] * 5000}
    assert httpx.post(f"{url}/mp/collect?api_secret={SERVER_KEY}", json=many,
                      timeout=10).status_code == 413


def test_a_browser_key_cannot_mint_event_names(make_gateway: Make) -> None:
    """A browser key's custom names are refused, and counted under one name: /metrics and the
    counters never grow a series per name a stranger sends."""
    url = make_gateway()
    names = {"events": [{"event": f"junk-{i}"} for i in range(200)]}
    answer = post(url, names, BROWSER)
    assert answer.status_code == 422 and len(answer.json()["rejected"]) == 200
    assert "browser key" in answer.json()["rejected"][0]["errors"][0]["message"]
    assert post(url, {"event": "add_to_cart", "event_id": "ok"}, BROWSER).status_code == 202
    time.sleep(0.5)  # telemetry flush
    metrics = httpx.get(f"{url}/metrics").text
    assert "junk-" not in metrics and 'event="other"' in metrics


def test_browser_keys_have_their_own_share_of_the_outbox(make_gateway: Make,
                                                         sandbox_url: str) -> None:
    """Past their share, browser keys get 429 while server keys are still stored."""
    httpx.post(f"{sandbox_url}/sandbox/faults", json={"outage_seconds": 30})
    url = make_gateway(storage={"url": "memory://", "max_pending": 4,
                                "browser_max_pending_share": 0.5})
    codes = []
    for i in range(4):
        codes.append(post(url, {"event": "view_item", "event_id": f"b{i}"}, BROWSER).status_code)
        time.sleep(1.1)  # the pending count is read at most once a second
    assert codes[:2] == [202, 202] and 429 in codes[2:]
    assert post(url, {"event": "view_item", "event_id": "server-1"}).status_code == 202


def test_dashboard_logins_slow_down(make_gateway: Make) -> None:
    """After five wrong passwords a client waits (429 with Retry-After), right password or not;
    a weak admin password stops start-up."""
    url = make_gateway()
    for _ in range(5):
        assert httpx.get(f"{url}/dashboard", auth=("admin", "guess")).status_code == 401
    locked = httpx.get(f"{url}/dashboard", auth=ADMIN)
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1
    from tiktok_gateway.web.app import create_app

    weak = settings_from_dict({"storage": {"url": "memory://"}, "admin": {"password": "admin"},
                               "destinations": [{"name": "shop", "pixel_id": PIXEL,
                                                 "access_token": TOKEN}]})
    with pytest.raises(ConfigError, match="shorter than 12"):
        create_app(weak)


def test_deep_json_is_refused_clearly(make_gateway: Make) -> None:
    """Custom properties nested past what TikTok's JSON can carry get a 4xx naming them."""
    url = make_gateway()
    deep = ('{"event": "view_item", "properties": {"deep": ' + "[" * 600 + "]" * 600 + "}}")
    answer = httpx.post(f"{url}/v1/events", content=deep, headers={
        **SERVER, "Content-Type": "application/json"}, timeout=10)
    assert answer.status_code == 422
    assert answer.json()["rejected"][0]["errors"][0]["field"] == "properties"
    deeper = '{"event": "view_item", "properties": {"deep": ' + "[" * 2000 + "]" * 2000 + "}}"
    assert httpx.post(f"{url}/v1/events", content=deeper, headers=SERVER,
                      timeout=10).status_code == 400


def test_report_escapes_markup_in_names(tmp_path: Any) -> None:
    """An event name holding rich markup is printed as written, never run as markup."""
    import asyncio
    import subprocess
    import sys

    from tiktok_gateway.outbox import open_store

    async def seed() -> None:
        store = open_store(f"sqlite:///{tmp_path}/g.db")
        minute = int(time.time() // 60)
        await store.telemetry.add({(minute, "shop", "[/x][red]boom", "received"): 2}, [])
        await store.close()

    asyncio.run(seed())
    config = tmp_path / "g.toml"
    config.write_text(f'[storage]\nurl = "sqlite:///{tmp_path}/g.db"\n[[destinations]]\n'
                      f'name = "shop"\npixel_id = "{PIXEL}"\naccess_token = "t"\n')
    out = subprocess.run([sys.executable, "-m", "tiktok_gateway", "report", "--config",
                          str(config)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "[/x][red]boom" in out.stdout


def test_a_second_process_never_takes_back_leases(tmp_path: Any) -> None:
    """report and replay open the store without the running gateway's leases, and cannot
    claim from it, so the batches it is sending are not sent twice; once it stops (or dies),
    the next gateway on the file delivers them."""
    import asyncio

    from tiktok_gateway.exceptions import OutboxError
    from tiktok_gateway.outbox import NewEvent, RecordQuery, StoreOptions, open_store

    async def run() -> int:
        url = f"sqlite:///{tmp_path}/g.db"
        running = open_store(url)
        await running.outbox.put([NewEvent("shop", "ViewContent", "1", int(time.time()), "{}")])
        assert len(await running.outbox.claim(10, lease=60)) == 1  # in flight
        report = open_store(url, StoreOptions(owner=False))
        with pytest.raises(OutboxError, match="only the process that owns"):
            await report.outbox.claim(10, lease=60)
        assert len(await report.outbox.find(RecordQuery())) == 1  # it still reads
        await report.close()
        await running.close()  # the gateway stops (or dies) with its batch in flight
        restarted = open_store(url)  # the next one on the file sends it
        retaken = len(await restarted.outbox.claim(10, lease=60))
        await restarted.close()
        return retaken

    assert asyncio.run(run()) == 1


def test_personal_data_in_custom_properties_and_urls_never_lands(make_gateway: Make,
                                                                  sandbox_url: str,
                                                                  tmp_path: Any) -> None:
    """Emails and phone numbers in custom properties, page.url and referrer are removed before
    anything is stored, each named in a warning: not in the database, the inspector or TikTok."""
    url = make_gateway()
    answer = post(url, {"event": "view_item", "event_id": "pii-1", "properties": {
        "note": "call shopper.pii@example.com", "contact_phone": "030 901820",
        "promo": "+44 7700 900123", "campaign": "spring"},
        "page": {"url": "https://shop.example/thanks?email=shopper.pii%40example.com&step=2",
                 "referrer": "https://shop.example/account?tel=%2B447700900123"}}).json()
    fields = {w["field"] for w in answer["warnings"]}
    assert {"properties.note", "properties.contact_phone", "properties.promo", "page.url",
            "page.referrer"} <= fields
    assert eventually(lambda: bool(sandbox_events(sandbox_url)))
    [event] = sandbox_events(sandbox_url)
    sent = str(event["parsed"])
    assert "spring" in sent and "step=2" in sent
    time.sleep(0.5)
    inspector = httpx.get(f"{url}/dashboard/inspector", auth=ADMIN).text
    record = inspector.split('href="/dashboard/inspector/')[1].split('"')[0]
    shown = httpx.get(f"{url}/dashboard/inspector/{record}", auth=ADMIN).text
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("gateway.db*"))
    for place in (sent, shown, stored.decode(errors="replace")):
        assert "shopper.pii" not in place and "7700" not in place and "901820" not in place


def test_volumes_are_not_shown_to_strangers(make_gateway: Make) -> None:
    """With a metrics token, /metrics needs it; /readyz shows its counts to the admin only."""
    url = make_gateway(server={"metrics_token": "metrics-token-0123"})
    assert httpx.get(f"{url}/metrics").status_code == 401
    scraped = httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer metrics-token-0123"})
    assert scraped.status_code == 200 and "tiktok_gateway_outbox_pending" in scraped.text
    assert "pending" not in httpx.get(f"{url}/readyz").json()
    assert httpx.get(f"{url}/readyz", auth=ADMIN).json()["pending"] == 0


def test_replay_works_behind_a_trusted_tls_proxy(make_gateway: Make, sandbox: tuple[str, Any],
                                                 tmp_path: Any) -> None:
    """Behind a trusted TLS-terminating proxy the browser's https Origin is the dashboard's
    own; from anywhere else it is still refused."""
    sandbox[1].state.tokens = {PIXEL: {"not-our-token"}}  # so that events are dead-lettered
    for trusted, expected in ((["127.0.0.1/32"], 303), ([], 403)):
        url = make_gateway(server={"trusted_proxies": trusted},
                           storage={"url": f"sqlite:///{tmp_path}/{expected}.db"})
        post(url, sample_event())
        assert eventually(lambda u=url: 'class="dead-letter"' in httpx.get(  # type: ignore[misc]
            f"{u}/dashboard/dead-letters", auth=ADMIN).text)
        with httpx.Client(base_url=url, auth=ADMIN) as browser:
            page = browser.get("/dashboard/dead-letters").text
            csrf = page.split('name="csrf" value="')[1].split('"')[0]
            answer = browser.post("/dashboard/dead-letters/replay",
                                  data={"csrf": csrf, "confirm": "yes"},
                                  headers={"Origin": "https://gateway.example.com",
                                           "X-Forwarded-Proto": "https",
                                           "X-Forwarded-Host": "gateway.example.com"})
        assert answer.status_code == expected, trusted
        # The session's cookie is marked Secure when the browser reached us over https.
        cookie = httpx.get(f"{url}/dashboard/dead-letters", auth=ADMIN, headers={
            "X-Forwarded-Proto": "https"}).headers["set-cookie"].lower()
        assert ("; secure" in cookie) == bool(trusted) and "samesite=strict" in cookie
