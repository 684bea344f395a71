"""The set-up checklist, walked against the sandbox: each step turns done when the gateway
has seen it done, and says why not (and what to do) until then."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ADMIN, BROWSER_KEY, SERVER_KEY, SHOP_ORIGIN, TOKEN, gateway_config
from tiktok_gateway.config import settings_from_dict
from tiktok_gateway.outbox import StoreOptions, open_store
from tiktok_gateway.testing import running_sandbox, serve_in_thread
from tiktok_gateway.web.app import create_app

OUR_PIXEL = "C4SHOP0PIXEL00000042"  # a pixel of the shop's own, not the example one
ORDER = {"value": 30, "currency": "USD",
         "contents": [{"content_id": "sku-1", "quantity": 1, "price": 30}]}
USER = {"email": "buyer@example.com", "phone": "+1 415 555 0100", "ttp": "2F7h37YkS1j57AYSKTI",
        "ttclid": "E.C.P.abc", "ip": "203.0.113.9",
        "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Firefox/133.0"}


@contextlib.contextmanager
def serve(config: dict[str, Any]) -> Iterator[str]:
    with serve_in_thread(create_app(settings_from_dict(config))) as url:
        yield url


def steps(gateway: str) -> dict[str, dict[str, str]]:
    answer = httpx.get(f"{gateway}/dashboard/api/setup", auth=ADMIN).json()
    return {s["id"]: s for s in answer["steps"]}


def status(gateway: str) -> dict[str, str]:
    return {k: s["status"] for k, s in steps(gateway).items()}


def wait_for(gateway: str, step: str, wanted: str, timeout: float = 10) -> dict[str, str]:
    deadline = time.time() + timeout
    while True:
        found = steps(gateway)[step]
        if found["status"] == wanted or time.time() > deadline:
            return found
        time.sleep(0.1)


def purchase(gateway: str, order: str) -> None:
    response = httpx.post(f"{gateway}/v1/events", headers={"Authorization": f"Bearer {SERVER_KEY}"},
                          json={"event": "purchase", "properties": {"order_id": order, **ORDER},
                                "user": USER})
    assert response.status_code == 202, response.text


def test_the_example_pixel_id_is_not_done() -> None:
    from tiktok_gateway.checklist import checklist
    from tiktok_gateway.config import EXAMPLE_PIXEL_ID, DestinationSettings

    [step, *_] = checklist([DestinationSettings(name="shop", pixel_id=EXAMPLE_PIXEL_ID)], [],
                           [], {})
    assert step.id == "pixel_id" and step.status == "todo" and "example" in step.evidence


def test_the_checklist_goes_from_todo_to_done(tmp_path: Path) -> None:
    with running_sandbox({OUR_PIXEL: {TOKEN}}) as (sandbox_url, _):
        walk(tmp_path, sandbox_url)


def walk(tmp_path: Path, sandbox_url: str) -> None:
    destination = {"name": "shop", "pixel_id": OUR_PIXEL, "access_token": TOKEN,
                   "phone_region": "US", "test_event_code": "TEST42"}
    testing = gateway_config(tmp_path, sandbox_url, destinations=[destination])
    with serve(testing) as gateway:
        first = status(gateway)
        assert list(first) == ["pixel_id", "access_token", "events", "test_code", "test_event",
                               "test_lint", "standard_names", "user_data", "purchase_params",
                               "shared_event_ids", "live", "match_quality"]
        assert first["pixel_id"] == first["test_code"] == "done"
        overview = httpx.get(f"{gateway}/dashboard", auth=ADMIN).text
        assert 'id="setup"' in overview and "2 of 12 steps done" in overview
        assert {k for k, v in first.items() if v == "todo"} == set(first) - {"pixel_id",
                                                                           "test_code"}
        # A revoked token: the step says which code, and what to do.
        httpx.post(f"{sandbox_url}/sandbox/faults", json={"token_error": 40105})
        purchase(gateway, "T-0")
        refused: dict[str, str] = {}
        for _ in range(50):
            refused = steps(gateway)["access_token"]
            if "40105" in refused["evidence"]:
                break
            time.sleep(0.1)
        assert "40105" in refused["evidence"] and "access token" in refused["action"]
        httpx.post(f"{sandbox_url}/sandbox/faults", json={"token_error": 0})

        # A test order: the pixel's leg of it from the page, and the backend's copy.
        pixel = httpx.post(f"{gateway}/v1/pixel?key={BROWSER_KEY}", headers={
            "Origin": SHOP_ORIGIN, "Content-Type": "text/plain"}, content=(
            '{"legs": [{"event": "CompletePayment", "event_id": "T-1_CompletePayment", '
            '"order_id": "T-1", "pixel": "loaded", "load_ms": 800}]}'))
        assert pixel.status_code == 202, pixel.text
        purchase(gateway, "T-1")
        assert wait_for(gateway, "test_event", "done")["evidence"].startswith("1 test events")
        walked = status(gateway)
        assert walked["access_token"] == "done"
        for step in ("events", "test_lint", "standard_names", "user_data", "purchase_params"):
            assert walked[step] == "done", steps(gateway)[step]
        assert wait_for(gateway, "shared_event_ids", "done")["status"] == "done"
        assert walked["live"] == "todo"
        assert "test_event_code" in steps(gateway)["live"]["evidence"]

    # A day of live traffic, as the counters would hold it, then the test code removed.
    asyncio.run(live_history(testing["storage"]["url"], hours_ago=25))
    live = gateway_config(tmp_path, sandbox_url, destinations=[
        {k: v for k, v in destination.items() if k != "test_event_code"}])
    with serve(live) as gateway:
        purchase(gateway, "L-1")
        assert wait_for(gateway, "live", "done")["status"] == "done"
        final = steps(gateway)
        assert {k: s["status"] for k, s in final.items()} == dict.fromkeys(final, "done"), final
        assert "good" in final["match_quality"]["evidence"]
        overview = httpx.get(f"{gateway}/dashboard", auth=ADMIN).text
        assert 'id="setup"' not in overview and "all 12 steps done" in overview


async def live_history(url: str, hours_ago: float) -> None:
    store = open_store(url, StoreOptions(owner=False))
    minute = int((time.time() - hours_ago * 3600) // 60)
    names = ["received", *(f"has:{k}" for k in ("email", "phone", "ttclid", "ttp",
                                                 "ip_user_agent", "value", "currency",
                                                 "contents"))]
    try:
        await store.telemetry.add({(minute, "shop", "CompletePayment", n): 20 for n in names}, [])
    finally:
        await store.close()


