"""TikTokClient against the sandbox over real HTTP on loopback: every outcome TikTok has."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from tests.conftest import OTHER_PIXEL, PIXEL, TOKEN
from tiktok_gateway import RateLimited, RejectedRequest, TikTokClient, TransportError
from tiktok_gateway.sandbox import Sandbox
from tiktok_gateway.tiktok.codes import CODE_PARTIAL
from tiktok_gateway.tiktok.schema import build_request

EXAMPLES = Path(__file__).parents[2] / "examples"


def item(event_id: str = "order_1", event: str = "CompletePayment", **extra: Any) -> dict[str, Any]:
    return {"event": event, "event_time": int(time.time()) - 5, "event_id": event_id,
            "user": {"email": ["a" * 64], "ip": "13.57.97.131"},
            "properties": {"value": 10, "currency": "USD"}, **extra}


def sandbox_events(url: str, **params: Any) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/sandbox/events", params=params)
    response.raise_for_status()
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def set_faults(url: str, **faults: Any) -> None:
    httpx.post(f"{url}/sandbox/faults", json=faults).raise_for_status()


async def test_delivered(client: TikTokClient, sandbox_url: str) -> None:
    """A valid request gets code 0 with TikTok's request_id format, and the event is recorded."""
    [delivery] = await client.send_events(PIXEL, [item()])
    assert delivery.response.code == 0 and not delivery.partial
    assert delivery.request_id and len(delivery.request_id) == 34
    [received] = sandbox_events(sandbox_url)
    assert received["event"] == "CompletePayment"
    assert received["hashed_fields"] == ["email"]
    assert received["request_id"] == delivery.request_id


async def test_unknown_token_is_rejected(sandbox_url: str) -> None:
    """An unknown token gets 40105, not retryable."""
    async with TikTokClient("wrong-token-000000", base_url=sandbox_url) as client:
        with pytest.raises(RejectedRequest) as exc:
            await client.send_events(PIXEL, [item()])
    assert exc.value.code == 40105 and not exc.value.retryable


async def test_token_without_rights_to_pixel(client: TikTokClient) -> None:
    """A valid token for another pixel gets 40001 with TikTok's message."""
    with pytest.raises(RejectedRequest) as exc:
        await client.send_events(OTHER_PIXEL, [item()])
    assert exc.value.code == 40001
    assert f"No permission to operate pixel code: {OTHER_PIXEL}" in exc.value.tiktok_message


async def test_invalid_parameter_names_the_path(client: TikTokClient, sandbox_url: str) -> None:
    """A numeric event_id is rejected with 40002 and the field path; nothing is recorded."""
    bad = item()
    bad["event_id"] = 12345
    with pytest.raises(RejectedRequest) as exc:
        await client.send_events(PIXEL, [item("ok"), bad])
    assert exc.value.code == 40002
    assert exc.value.tiktok_message == "data.1.event_id: Not a valid string"
    assert exc.value.request_id
    assert sandbox_events(sandbox_url) == []


async def test_over_1000_events_rejected_whole(client: TikTokClient) -> None:
    """A hand-built request of 1,001 events is refused whole."""
    body = build_request(PIXEL, [item(str(i)) for i in range(1001)])
    with pytest.raises(RejectedRequest) as exc:
        await client.send(body)
    assert exc.value.code == 40002 and "at most 1000" in exc.value.tiktok_message


async def test_send_events_splits_into_requests_of_1000(client: TikTokClient,
                                                        sandbox_url: str) -> None:
    """The client never sends more than 1,000 events in one request."""
    deliveries = await client.send_events(PIXEL, [item(str(i)) for i in range(2500)])
    assert [d.events for d in deliveries] == [1000, 1000, 500]
    assert len(sandbox_events(sandbox_url, limit=0)) == 2500


async def test_unhashed_email_is_dropped_silently(client: TikTokClient, sandbox_url: str) -> None:
    """Like TikTok, the sandbox answers 0 for a raw email and records it as dropped."""
    raw = item()
    raw["user"]["email"] = ["alice@example.com"]
    [delivery] = await client.send_events(PIXEL, [raw])
    assert delivery.response.code == 0
    [received] = sandbox_events(sandbox_url)
    assert received["dropped"][0]["field"] == "data.0.user.email.0"
    assert "alice" not in json.dumps(received)


async def test_strict_mode_rejects_drops() -> None:
    """In strict mode the sandbox answers 40002 for what TikTok would drop."""
    from tiktok_gateway.testing import running_sandbox

    with running_sandbox(strict=True) as (url, _):
        async with TikTokClient("any-token-1234567", base_url=url) as client:
            raw = item()
            raw["user"]["email"] = ["alice@example.com"]
            with pytest.raises(RejectedRequest) as exc:
                await client.send_events(PIXEL, [raw])
    assert exc.value.code == 40002 and "user.email.0" in exc.value.tiktok_message


async def test_dedup_like_tiktok(client: TikTokClient, sandbox_url: str) -> None:
    """Same pixel, event and event_id count once; another event name is not a duplicate."""
    await client.send_events(PIXEL, [item("o1"), item("o1"), item("o1", event="AddToCart")])
    flags = [(e["event"], e["duplicate"]) for e in sandbox_events(sandbox_url)]
    assert flags == [("CompletePayment", False), ("CompletePayment", True), ("AddToCart", False)]
    stats = httpx.get(f"{sandbox_url}/sandbox/stats").json()
    assert stats["duplicates"] == 1 and stats["events"] == 3


async def test_test_events_kept_apart(client: TikTokClient, sandbox_url: str) -> None:
    """Events with a test_event_code are listed apart from live ones."""
    await client.send_events(PIXEL, [item("live1")])
    await client.send_events(PIXEL, [item("test1")], test_event_code="TEST123")
    assert [e["event_id"] for e in sandbox_events(sandbox_url, test_event_code="TEST123")] == ["test1"]
    assert [e["event_id"] for e in sandbox_events(sandbox_url, live="true")] == ["live1"]


async def test_rate_limit_gives_40100(client: TikTokClient, sandbox_url: str) -> None:
    """Above the configured QPS the sandbox answers 40100, which is retryable."""
    set_faults(sandbox_url, rate_limit_qps=2)
    outcomes = []
    for i in range(4):
        try:
            await client.send_events(PIXEL, [item(str(i))])
            outcomes.append("ok")
        except RateLimited as exc:
            assert exc.code == 40100 and exc.retryable
            outcomes.append("limited")
    assert outcomes == ["ok", "ok", "limited", "limited"]


@pytest.mark.parametrize("kind", ["json", "html"])
async def test_server_errors_are_retryable(client: TikTokClient, sandbox_url: str,
                                           kind: str) -> None:
    """A 500 JSON body or an nginx 502 page is a retryable transport error."""
    set_faults(sandbox_url, error_rate=1.0, error_kind=kind)
    with pytest.raises(TransportError) as exc:
        await client.send_events(PIXEL, [item()])
    assert exc.value.retryable and exc.value.status == (500 if kind == "json" else 502)


async def test_outage_then_recovery(client: TikTokClient, sandbox_url: str) -> None:
    """During an outage requests fail with 503; after it, they succeed."""
    set_faults(sandbox_url, outage_seconds=0.5)
    with pytest.raises(TransportError) as exc:
        await client.send_events(PIXEL, [item()])
    assert exc.value.status == 503
    time.sleep(0.6)
    await client.send_events(PIXEL, [item()])


async def test_latency_beyond_timeout(sandbox_url: str) -> None:
    """A slow TikTok is a retryable timeout."""
    set_faults(sandbox_url, latency_ms=500)
    async with TikTokClient(TOKEN, base_url=sandbox_url, timeout=0.1) as client:
        with pytest.raises(TransportError) as exc:
            await client.send_events(PIXEL, [item()])
    assert "timed out" in exc.value.message


async def test_partial_success(client: TikTokClient, sandbox_url: str) -> None:
    """Code 20001 is a partial delivery naming the failed events."""
    set_faults(sandbox_url, partial_rate=0.5)
    [delivery] = await client.send_events(PIXEL, [item(str(i)) for i in range(20)])
    assert delivery.response.code == CODE_PARTIAL and delivery.partial
    failed = delivery.response.failed_indexes()
    assert 0 < len(failed) < 20
    assert len(sandbox_events(sandbox_url)) == 20 - len(failed)


async def test_unreachable_is_retryable() -> None:
    """Connection refused is a retryable transport error."""
    from tiktok_gateway.testing import free_port

    async with TikTokClient(TOKEN, base_url=f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(TransportError) as exc:
            await client.send_events(PIXEL, [item()])
    assert exc.value.retryable


def test_token_never_in_repr_or_request_log(sandbox: tuple[str, Sandbox]) -> None:
    """The access token is masked in the sandbox's log and absent from the client's repr."""
    url, _ = sandbox
    client = TikTokClient(TOKEN, base_url=url)
    assert TOKEN not in repr(client)
    requests.post(f"{url}/open_api/v1.3/event/track/", headers={"Access-Token": TOKEN},
                  json=build_request(PIXEL, [item()]), timeout=5)
    log = httpx.get(f"{url}/sandbox/requests").text
    assert TOKEN not in log and "****" in log


@pytest.mark.parametrize(
    ("name", "path"),
    [("example-a-web-purchase.json", "/open_api/v1.3/event/track/"),
     ("example-b-web-batch.json", "/open_api/v1.3/event/track/"),
     ("example-c-legacy-pixel-track.json", "/open_api/v1.3/pixel/track/")],
)
def test_raw_posts_of_shared_examples(name: str, path: str) -> None:
    """Plain `requests` posts of TikTok's example bodies are accepted with code 0."""
    from tiktok_gateway.testing import running_sandbox

    body = json.loads((EXAMPLES / name).read_text())
    with running_sandbox() as (url, _):
        response = requests.post(url + path, json=body, headers={"Access-Token": "t" * 20},
                                 timeout=5)
        assert response.status_code == 200
        assert response.json()["code"] == 0, response.json()
        assert len(sandbox_events(url)) == len(body.get("data", [body]))


def test_legacy_batch_endpoint() -> None:
    """The legacy pixel/batch endpoint takes 1.0 batches and records them as 2.0 events."""
    from tiktok_gateway.testing import running_sandbox

    body = json.loads((EXAMPLES / "example-c-legacy-pixel-track.json").read_text())
    event = {k: body[k] for k in ("event", "event_id", "timestamp", "properties", "context")}
    batch = {"pixel_code": body["pixel_code"], "batch": [
        {"type": "track", **event}, {"type": "track", **copy.deepcopy(event), "event_id": "2"}]}
    with running_sandbox() as (url, _):
        response = requests.post(url + "/open_api/v1.3/pixel/batch/", json=batch,
                                 headers={"Access-Token": "t" * 20}, timeout=5)
        assert response.json()["code"] == 0
        received = sandbox_events(url)
    assert [e["event_id"] for e in received] == ["1616318632825_357", "2"]
    assert received[0]["parsed"]["user"]["ttclid"] == "123ATXSfe"


def test_fault_api_validates_input(sandbox_url: str) -> None:
    """Bad fault settings get a 400 naming the field."""
    response = httpx.post(f"{sandbox_url}/sandbox/faults", json={"error_rate": 3})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "error_rate"


def test_faults_add_up_and_the_answer_says_so(sandbox_url: str) -> None:
    first = httpx.post(f"{sandbox_url}/sandbox/faults", json={"error_rate": 0.5}).json()
    assert "kept_from_before" not in first
    second = httpx.post(f"{sandbox_url}/sandbox/faults", json={"latency_ms": 10}).json()
    assert second["kept_from_before"] == ["error_rate"] and second["error_rate"] == 0.5
    assert "DELETE /sandbox/faults" in second["note"]
    httpx.delete(f"{sandbox_url}/sandbox/faults")
    third = httpx.post(f"{sandbox_url}/sandbox/faults", json={"latency_ms": 0}).json()
    assert "kept_from_before" not in third and third["error_rate"] == 0
