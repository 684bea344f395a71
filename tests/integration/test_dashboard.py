"""The dashboard and metrics over real HTTP, checked against known traffic."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN, PIXEL, SERVER_KEY, TOKEN
from tiktok_gateway.testing import sample_event

AUTH = {"Authorization": f"Bearer {SERVER_KEY}"}
PAGES = ["/dashboard", "/dashboard/quality", "/dashboard/inspector", "/dashboard/inspector/1",
         "/dashboard/test-events", "/dashboard/dead-letters", "/dashboard/gaps",
         "/dashboard/api/summary", "/dashboard/api/events"]


def post(url: str, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/events", json=body, headers={**AUTH, **headers}, timeout=10)


def page(url: str, path: str) -> str:
    response = httpx.get(url + path, auth=ADMIN, timeout=10)
    assert response.status_code == 200, (path, response.text[:200])
    return response.text


def page_json(url: str, path: str) -> Any:
    return json.loads(page(url, path))


def cell(html: str, event: str, field: str) -> str:
    row = re.search(rf'<tr data-event="{event}">(.*?)</tr>', html, re.S)
    assert row, f"no row for {event}"
    match = re.search(rf'data-field="{field}">(?:<b>)?([^<]*)', row.group(1))
    assert match
    return match.group(1).strip()


def wait_until(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.time() + timeout
    while not check():
        assert time.time() < deadline, "timed out"
        time.sleep(0.1)


def four_purchases(url: str) -> None:
    """Known traffic: 4 purchases, 3 with an email; 1 add_to_cart without ids."""
    events = []
    for i in range(4):
        user = {"email": f"buyer{i}@example.com"} if i < 3 else {"phone": "+12133734253"}
        user.update(ip="13.57.97.131", user_agent="Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0")
        events.append({"event": "purchase", "user": user,
                       "properties": {"order_id": f"o-{i}", "value": 10, "currency": "USD"}})
    events.append({"event": "add_to_cart", "properties": {"value": 3, "currency": "USD"}})
    assert post(url, {"events": events}).json()["queued"] == 5


@pytest.mark.parametrize("path", [*PAGES, "/dashboard/test-events/stream"])
def test_every_dashboard_route_needs_admin(make_gateway: Callable[..., str], path: str) -> None:
    """Without admin credentials, or with wrong ones, every dashboard route answers 401."""
    url = make_gateway()
    assert httpx.get(url + path).status_code == 401
    assert httpx.get(url + path, auth=("admin", "wrong")).status_code == 401
    assert httpx.post(url + "/dashboard/dead-letters/replay").status_code == 401


def test_data_quality_figures(make_gateway: Callable[..., str]) -> None:
    """3 of 4 purchases with email shows 75 %; the add_to_cart without ids is flagged."""
    url = make_gateway()
    four_purchases(url)
    wait_until(lambda: "CompletePayment" in page(url, "/dashboard/quality"))
    html = page(url, "/dashboard/quality")
    assert cell(html, "CompletePayment", "email") == "75%"
    assert cell(html, "CompletePayment", "phone") == "25%"
    assert cell(html, "CompletePayment", "currency") == "100%"
    assert cell(html, "AddToCart", "shared_event_id") == "0%"
    # email 2.0 x 0.75 + phone 1.5 x 0.25 + IP and user agent (the shopper's, sent) 1.5 x 1
    assert cell(html, "CompletePayment", "emq") == "3.4"
    assert 'data-band="poor"' in html
    # The advice to send an event id is given once, naming the events it concerns.
    assert html.count("Send an event_id (or an order_id)") == 1 and "1 event: <bdi>AddToCart" in html
    post(url, {"event": "view_item", "event_id": "v-1", "user": {"email": "not-an-email"}})
    wait_until(lambda: 'data-invalid="email"' in page(url, "/dashboard/quality"))
    html = page(url, "/dashboard/quality")
    row = re.search(r'<tr data-event="ViewContent">(.*?)</tr>', html, re.S)
    assert row and "1 invalid" in row.group(1) and cell(html, "ViewContent", "email") == "0%"
    exported = page(url, "/dashboard/quality?format=csv").splitlines()
    assert exported[0].startswith("event,events,email,phone") and len(exported) == 4
    [purchases] = [r for r in page_json(url, "/dashboard/quality?format=json")["events"]
                   if r["event"] == "CompletePayment"]
    assert purchases["email"] == 0.75 and purchases["band"] == "poor"
    assert "AddToCart" in page(url, "/dashboard/quality?mode=live")
    # By source: all of it came with the server key; nothing from a browser.
    by_server = page(url, "/dashboard/quality?source=server")
    assert cell(by_server, "CompletePayment", "email") == "75%"
    assert 'data-invalid="email"' in by_server
    assert "No events in this window." in page(url, "/dashboard/quality?source=browser")
    assert "AddToCart" not in page(url, "/dashboard/quality?mode=test")


def test_tag_health_figures(make_gateway: Callable[..., str], sandbox_url: str) -> None:
    """Totals, success rate and the error log follow what really happened."""
    url = make_gateway()
    four_purchases(url)
    wait_until(lambda: 'id="delivered">5<' in page(url, "/dashboard"))
    httpx.post(f"{sandbox_url}/sandbox/faults", json={"rate_limit_qps": 1})
    for i in range(3):
        post(url, {"event": "view_item", "event_id": f"v{i}"})
        time.sleep(0.15)
    wait_until(lambda: "Too many requests" in page(url, "/dashboard"))
    html = page(url, "/dashboard")
    assert 'id="received">8<' in html
    errors = re.search(r'<table class="errors">(.*?)</table>', html, re.S)
    assert errors and "40100" in errors.group(1)
    assert re.search(r'class="n success-rate (ok|bad)">\d+%', html)
    # A custom range (UTC, as the page's inputs send it) counts the same traffic; an empty
    # or backwards one is refused with the reason.
    hour_ago = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() - 3600))
    assert 'id="received">8<' in page(url, f"/dashboard?from={hour_ago}")
    long_ago = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() - 7200))
    assert 'id="received">0<' in page(url, f"/dashboard?from={long_ago}&to={hour_ago}")
    backwards = httpx.get(f"{url}/dashboard?from={hour_ago}&to={long_ago}", auth=ADMIN)
    assert backwards.status_code == 400 and "from must be before to" in backwards.text


def test_inspector_shows_in_out_and_answer(make_gateway: Callable[..., str]) -> None:
    """One event's inbound (hashed), the body sent and TikTok's answer, side by side."""
    url = make_gateway()
    post(url, sample_event())
    wait_until(lambda: 'class="tag delivered"' in page(url, "/dashboard/inspector?order_id=100045"))
    listing = page(url, "/dashboard/inspector?order_id=100045")
    record_id = re.search(r'/dashboard/inspector/(\d+)', listing)
    assert record_id
    html = page(url, f"/dashboard/inspector/{record_id.group(1)}")
    assert "alice" not in html.lower()
    assert PIXEL in html and "CompletePayment" in html
    assert "&#34;request_id&#34;" in html or '"request_id"' in html
    assert page(url, "/dashboard/inspector?event_id=nope").count('class="record"') == 0


def test_dead_letter_replay_needs_csrf(make_gateway: Callable[..., str],
                                       sandbox: tuple[str, Any]) -> None:
    """A rejected event is listed with TikTok's reason; replay needs the CSRF token of the
    browser's own session: a forged one, one without its cookie, or another session's is
    refused."""
    _, sandbox_obj = sandbox
    url = make_gateway()
    sandbox_obj.state.tokens = {PIXEL: {"not-our-token"}}
    post(url, sample_event())
    wait_until(lambda: 'class="dead-letter"' in page(url, "/dashboard/dead-letters"))
    replay = "/dashboard/dead-letters/replay"
    with httpx.Client(base_url=url, auth=ADMIN) as browser, \
            httpx.Client(base_url=url, auth=ADMIN) as other_browser:
        html = browser.get("/dashboard/dead-letters").text
        assert "40105" in html
        assert browser.post(replay, data={"csrf": "x"}).status_code == 403
        token = re.search(r'name="csrf" value="([0-9a-f.]+)"', html)
        assert token
        assert httpx.post(f"{url}{replay}", auth=ADMIN,
                          data={"csrf": token.group(1)}).status_code == 403  # no cookie
        other = re.search(r'name="csrf" value="([0-9a-f.]+)"',
                          other_browser.get("/dashboard/dead-letters").text)
        assert other and other.group(1) != token.group(1)  # a token per session
        assert other_browser.post(replay, data={"csrf": token.group(1)}).status_code == 403
        assert browser.get("/dashboard/dead-letters").text.count(token.group(1)) >= 1  # kept
        sandbox_obj.state.tokens = {PIXEL: {TOKEN}}
        asked = browser.post(replay, data={"csrf": token.group(1)})  # all: confirm first
        assert asked.status_code == 200 and "Replay 1 dead letter(s)?" in asked.text
        assert "100045" in asked.text  # names what it will replay
        time.sleep(0.5)
        assert len(sandbox_obj.state.events) == 0  # nothing queued yet
        done = browser.post(replay, data={"csrf": token.group(1), "confirm": "yes"},
                            follow_redirects=True)
        assert "Queued 1 event(s) again" in done.text
    wait_until(lambda: len(sandbox_obj.state.events) == 1)


def test_dead_letters_grouped_and_replayed_by_cause_within_the_age_limit(
        make_gateway: Callable[..., str], sandbox: tuple[str, Any]) -> None:
    """Dead letters are grouped by cause with their order ids; a group replays after its
    confirmation; one too old for TikTok stays dead and the page says so."""
    _, sandbox_obj = sandbox
    url = make_gateway()
    sandbox_obj.state.tokens = {PIXEL: {"not-our-token"}}
    old = int(time.time()) - 7 * 86400 + 1800  # accepted now, too old within the hour
    post(url, {"events": [
        {**sample_event(), "properties": {"order_id": f"G-{i}", "value": 5, "currency": "USD"}}
        for i in range(3)] + [{**sample_event(), "event_time": old, "properties": {
            "order_id": "OLD-1", "value": 5, "currency": "USD"}}]})
    wait_until(lambda: page(url, "/dashboard/dead-letters").count('class="dead-letter"') == 4)
    replay = "/dashboard/dead-letters/replay"
    with httpx.Client(base_url=url, auth=ADMIN) as browser:
        html = browser.get("/dashboard/dead-letters").text
        groups = re.findall(r'<tr class="dead-group">.*?<td class="num">(\d+)</td>', html, re.S)
        assert groups == ["4"] and "OLD-1" in html and "G-2" in html
        cause = re.search(r'name="cause" value="([^"]+)"', html)
        token = re.search(r'name="csrf" value="([0-9a-f.]+)"', html)
        assert cause and token
        sandbox_obj.state.tokens = {PIXEL: {TOKEN}}
        asked = browser.post(replay, data={"csrf": token.group(1), "cause": cause.group(1)})
        assert "Replay 4 dead letter(s)?" in asked.text
        done = browser.post(replay, data={"csrf": token.group(1), "cause": cause.group(1),
                                          "confirm": "yes"}, follow_redirects=True)
        assert "Queued 3 event(s) again" in done.text
        assert "1 not replayed: older than TikTok accepts" in done.text
    wait_until(lambda: len(sandbox_obj.state.events) == 3)
    assert "OLD-1" in page(url, "/dashboard/dead-letters")


def test_test_code_banner(make_gateway: Callable[..., str]) -> None:
    """While a destination has a test code configured, every page says so."""
    url = make_gateway(destinations=[{"name": "shop", "pixel_id": PIXEL, "access_token": TOKEN,
                                      "test_event_code": "TEST999"}])
    assert "still has test_event_code <b>TEST999</b>" in page(url, "/dashboard/quality")


def test_metrics_endpoint(make_gateway: Callable[..., str]) -> None:
    """Prometheus text with event and request counters; no personal data or token in it."""
    url = make_gateway()
    post(url, sample_event())
    wait_until(lambda: "outcome=\"delivered\"" in httpx.get(f"{url}/metrics").text)
    text = httpx.get(f"{url}/metrics").text
    assert 'tiktok_gateway_events_total{destination="shop",event="CompletePayment",' \
           'outcome="received"} 1.0' in text
    assert "tiktok_gateway_request_seconds_bucket" in text
    assert "tiktok_gateway_outbox_pending" in text
    assert "alice" not in text.lower() and TOKEN not in text


def test_report_and_gap_report(make_gateway: Callable[..., str], tmp_path: Path) -> None:
    """`report` shows the figures; with orders, it finds the order TikTok never got."""
    url = make_gateway()
    four_purchases(url)
    wait_until(lambda: page(url, "/dashboard/inspector?state=sent").count('class="record"') == 5)
    time.sleep(0.5)  # the next telemetry flush
    config = tmp_path / "report.toml"
    config.write_text(f'[storage]\nurl = "sqlite:///{tmp_path}/gateway.db"\n'
                      f'[[destinations]]\nname = "shop"\npixel_id = "{PIXEL}"\n')
    orders = tmp_path / "orders.csv"
    orders.write_text("order_id,time,value\no-0,,10\no-1,,10\no-2,,10\no-3,,10\no-missing,,99\n")
    cli = [sys.executable, "-m", "tiktok_gateway", "report", "--config", str(config)]
    gap = subprocess.run([*cli, "--orders", str(orders), "--json"], capture_output=True,
                         text=True, timeout=60)
    assert gap.returncode == 0, gap.stderr
    assert json.loads(gap.stdout) == {
        "orders": 5, "delivered": 4, "share": 0.8, "pending": [], "failed": [],
        "missing": ["o-missing"], "changed": {},
        "by_label": {"delivered": 4, "never received": 1},
        "labels": {"o-0": "delivered", "o-1": "delivered", "o-2": "delivered", "o-3": "delivered",
                   "o-missing": "never received"}}
    text = subprocess.run([*cli, "--since", "1h"], capture_output=True, text=True, timeout=60)
    assert "CompletePayment" in text.stdout and "75%" in text.stdout
