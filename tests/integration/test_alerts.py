"""Alerts end to end: a gateway delivering to the sandbox, a receiver for alert webhooks on
loopback, and faults the sandbox really produces (an outage, a revoked token)."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.conftest import ADMIN, SERVER_KEY
from tiktok_gateway.notify import SIGNATURE, TIMESTAMP
from tiktok_gateway.testing import serve_in_thread

SECRET = "alert-secret-0123456789"


class Receiver:
    """An alert webhook receiver that can be down: it answers 503 while `down` is set."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.slack: list[dict[str, Any]] = []
        self.refused = 0
        self.down = False
        self.bad_signatures = 0

    async def json_hook(self, request: Request) -> Response:
        body = await request.body()
        if self.down:
            self.refused += 1
            return Response("down", 503)
        stamp = request.headers[TIMESTAMP]
        expected = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256)
        if request.headers.get(SIGNATURE) != "sha256=" + expected.hexdigest():
            self.bad_signatures += 1
        self.messages.append(orjson.loads(body))
        return JSONResponse({"ok": True})

    async def slack_hook(self, request: Request) -> Response:
        self.slack.append(orjson.loads(await request.body()))
        return Response("ok")

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hook", self.json_hook, methods=["POST"]),
                                 Route("/slack", self.slack_hook, methods=["POST"])])


@pytest.fixture
def receiver() -> Iterator[tuple[str, Receiver]]:
    hooks = Receiver()
    with serve_in_thread(hooks.app()) as url:
        yield url, hooks


def alerting_gateway(make_gateway: Callable[..., str], receiver_url: str) -> str:
    return make_gateway(alerts={
        "evaluate_seconds": 0.2, "delivery_window_minutes": 0.05, "delivery_min_events": 2,
        "webhook_retry_seconds": 0.2,
        "webhooks": [{"url": f"{receiver_url}/hook", "format": "json", "secret": SECRET},
                     {"url": f"{receiver_url}/slack", "format": "slack"}]})


class Traffic:
    """A backend sending one purchase every 50 ms until stopped (bounded)."""

    def __init__(self, gateway: str) -> None:
        self.gateway = gateway
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {SERVER_KEY}"}) as client:
            for n in range(2000):
                if self.stop.is_set():
                    return
                client.post(f"{self.gateway}/v1/events", json={
                    "event": "add_to_cart", "event_id": f"t-{time.time_ns()}-{n}",
                    "properties": {"value": 5, "currency": "USD"},
                    "user": {"email": "shopper@example.com"}})
                time.sleep(0.05)

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def wait_until(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while not check():
        if time.time() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


def faults(sandbox_url: str, **values: Any) -> None:
    httpx.post(f"{sandbox_url}/sandbox/faults", json=values).raise_for_status()


def test_an_outage_is_one_firing_and_one_resolved_message(
        make_gateway: Callable[..., str], sandbox_url: str,
        receiver: tuple[str, Receiver]) -> None:
    receiver_url, hooks = receiver
    gateway = alerting_gateway(make_gateway, receiver_url)
    with Traffic(gateway):
        time.sleep(1.0)  # traffic delivered: no alert
        assert hooks.messages == []
        faults(sandbox_url, outage_seconds=2.5)
        wait_until(lambda: len(hooks.messages) >= 1)
        wait_until(lambda: len(hooks.messages) >= 2)
        time.sleep(1.5)  # nothing more while traffic flows again
    assert [(m["rule"], m["state"]) for m in hooks.messages] == [
        ("delivery_rate", "firing"), ("delivery_rate", "resolved")]
    firing, resolved = hooks.messages
    assert firing["destination"] == "shop"
    assert "delivered to TikTok" in firing["message"] and "HTTP 503" in firing["message"]
    assert resolved["since"] == firing["since"] and resolved["resolved_at"] >= firing["since"]
    assert hooks.bad_signatures == 0
    assert [m["text"].split(" (")[0] for m in hooks.slack] == [
        "[tiktok-gateway] FIRING delivery_rate", "[tiktok-gateway] RESOLVED delivery_rate"]
    # Nothing personal in a message: the shopper's email, raw or hashed, is in none of them.
    everything = orjson.dumps([hooks.messages, hooks.slack]).decode()
    assert "shopper@example.com" not in everything
    assert hashlib.sha256(b"shopper@example.com").hexdigest() not in everything
    listed = httpx.get(f"{gateway}/dashboard/api/alerts", auth=ADMIN).json()["alerts"]
    assert [(a["rule"], a["destination"], a["state"]) for a in listed] == [
        ("delivery_rate", "shop", "resolved")]
    assert set(listed[0]) == {"rule", "destination", "state", "since", "message"}


def test_a_revoked_token_alerts_at_once_and_a_down_receiver_gets_it_later(
        make_gateway: Callable[..., str], sandbox_url: str,
        receiver: tuple[str, Receiver]) -> None:
    receiver_url, hooks = receiver
    gateway = alerting_gateway(make_gateway, receiver_url)
    hooks.down = True
    faults(sandbox_url, token_error=40105)
    post = httpx.post(f"{gateway}/v1/events", headers={"Authorization": f"Bearer {SERVER_KEY}"},
                      json={"event": "purchase", "properties": {"order_id": "R-1", "value": 9,
                                                                 "currency": "USD"}})
    assert post.status_code == 202
    wait_until(lambda: hooks.refused >= 2)  # the receiver is down: the message is retried
    assert hooks.messages == []
    hooks.down = False
    wait_until(lambda: len(hooks.messages) >= 1)
    [message] = hooks.messages
    assert (message["rule"], message["state"]) == ("auth_error", "firing")
    assert "40105" in message["message"] and "access token" in message["message"]
    firing = httpx.get(f"{gateway}/dashboard/api/alerts", auth=ADMIN).json()["alerts"]
    assert [(a["rule"], a["state"]) for a in firing] == [("auth_error", "firing")]
    banner = httpx.get(f"{gateway}/dashboard", auth=ADMIN).text
    assert 'id="alert-banner"' in banner and "auth_error" in banner
    time.sleep(1.0)
    assert len(hooks.messages) == 1  # one message per incident, however long it lasts
    # The token is fixed: the next delivery resolves it.
    faults(sandbox_url, token_error=0)
    httpx.post(f"{gateway}/v1/events", headers={"Authorization": f"Bearer {SERVER_KEY}"},
               json={"event": "purchase", "properties": {"order_id": "R-2", "value": 9,
                                                          "currency": "USD"}})
    wait_until(lambda: len(hooks.messages) >= 2)
    assert [(m["rule"], m["state"]) for m in hooks.messages] == [
        ("auth_error", "firing"), ("auth_error", "resolved")]
