"""The dispatcher against the sandbox: batches, retries, poison isolation, dead letters."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from tiktok_gateway.dispatch import Dispatcher, DispatchSettings, Sender
from tiktok_gateway.outbox import DEAD, SENT, NewEvent, RecordQuery, open_store
from tiktok_gateway.ratelimit import RateLimiter
from tiktok_gateway.retry import RetryPolicy
from tiktok_gateway.sandbox import Sandbox, create_sandbox
from tiktok_gateway.sandbox.faults import FaultSettings
from tiktok_gateway.tiktok.client import TikTokClient

PIXEL = "C0EXAMPLE0PIXEL00001"


def new_event(event_id: str, *, poison: bool = False, test_code: str = "") -> NewEvent:
    data = {"event": "CompletePayment", "event_time": int(time.time()),
            "event_id": 12345 if poison else event_id,
            "properties": {"value": 5, "currency": "USD"}}
    return NewEvent("shop", "CompletePayment", event_id, data["event_time"],  # type: ignore[arg-type]
                    json.dumps(data), test_code)


@pytest.fixture
def sandbox() -> Sandbox:
    sandbox: Sandbox = create_sandbox({PIXEL: {"tok-123456789012"}}).state.sandbox
    return sandbox


@pytest.fixture
async def dispatcher(sandbox: Sandbox, tmp_path: object) -> AsyncIterator[Dispatcher]:
    client = TikTokClient("tok-123456789012", base_url="http://sandbox",
                          transport=httpx.ASGITransport(app=sandbox.app))
    outbox = open_store(f"sqlite:///{tmp_path}/outbox.db").outbox
    sender = Sender("shop", PIXEL, client, RateLimiter(1000))
    policy = RetryPolicy(base=0.05, cap=0.2)
    yield Dispatcher(outbox, {"shop": sender}, policy, DispatchSettings(linger=0, workers=1))
    await client.aclose()
    await outbox.close()


async def test_delivers_in_batches(dispatcher: Dispatcher, sandbox: Sandbox) -> None:
    """2,500 events go out as 3 requests, and each is marked sent with TikTok's request_id."""
    await dispatcher.outbox.put([new_event(str(i)) for i in range(2500)])
    assert await dispatcher.drain_once() == 2500
    assert sandbox.state.counters.requests == 3
    assert (await dispatcher.outbox.stats()).sent == 2500
    [record] = await dispatcher.outbox.find(RecordQuery(event_id="7"))
    assert record.state == SENT and record.result and record.result["request_id"]


async def test_test_and_live_events_go_in_separate_requests(dispatcher: Dispatcher,
                                                            sandbox: Sandbox) -> None:
    """A test event never shares a request with live events."""
    await dispatcher.outbox.put([new_event("1"), new_event("2", test_code="TEST7"), new_event("3")])
    await dispatcher.drain_once()
    assert sandbox.state.counters.requests == 2
    test = [e for e in sandbox.state.events if e.test_event_code == "TEST7"]
    assert [e.event_id for e in test] == ["2"]


async def test_poison_events_are_isolated(dispatcher: Dispatcher, sandbox: Sandbox) -> None:
    """Two events TikTok rejects are dead-lettered with its message; the other 30 arrive."""
    events = [new_event(str(i), poison=i in (5, 17)) for i in range(32)]
    await dispatcher.outbox.put(events)
    await dispatcher.drain_once()
    assert len(sandbox.state.events) == 30
    dead = await dispatcher.outbox.find(RecordQuery(state=DEAD))
    assert sorted(r.event_id for r in dead) == ["17", "5"]
    assert dead[0].result and dead[0].result["code"] == 40002
    assert dead[0].result["message"] == "data.0.event_id: Not a valid string"


async def test_retries_through_5xx_until_delivered(dispatcher: Dispatcher,
                                                   sandbox: Sandbox) -> None:
    """Server errors are retried with backoff; nothing is lost when TikTok recovers."""
    sandbox.faults.error_rate = 1.0
    await dispatcher.outbox.put([new_event(str(i)) for i in range(10)])
    await dispatcher.drain_once()
    [record] = await dispatcher.outbox.find(RecordQuery(event_id="0"))
    assert record.state == "pending" and record.attempts == 1
    sandbox.faults.error_rate = 0.0
    deadline = time.time() + 5
    while (await dispatcher.outbox.stats()).sent < 10 and time.time() < deadline:
        await dispatcher.drain_once()
    assert (await dispatcher.outbox.stats()).sent == 10
    counters = await dispatcher.outbox.telemetry.counters(0)
    assert sum(n for *_, name, n in counters if name == "retried") == 10


async def test_an_outage_is_logged_once_while_it_lasts_and_its_end(
        dispatcher: Dispatcher, sandbox: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    """Retries are not a line each: the start of an outage (with its cause), a reminder a
    minute while it lasts, and the recovery."""
    caplog.set_level(logging.INFO, logger="tiktok_gateway")
    sandbox.faults.update(FaultSettings(outage_seconds=60))
    await dispatcher.outbox.put([new_event(f"o-{i}") for i in range(3)])
    for _ in range(4):
        await dispatcher.drain_once()
        await asyncio.sleep(0.25)
    sandbox.faults.reset()
    deadline = time.time() + 5
    while (await dispatcher.outbox.stats()).sent < 3 and time.time() < deadline:
        await dispatcher.drain_once()
    lines = [r.getMessage() for r in caplog.records if r.name == "tiktok_gateway.dispatch"]
    assert len(lines) == 2, lines
    assert lines[0] == ("requests to TikTok failing for shop: TikTok unavailable (HTTP 503); "
                        "retrying with backoff, nothing is lost")
    assert lines[1].startswith("TikTok accepts requests for shop again after ")
    assert "failed, last: TikTok unavailable (HTTP 503)); delivery resumes" in lines[1]


async def test_rate_limited_requests_back_off(dispatcher: Dispatcher, sandbox: Sandbox) -> None:
    """40100 is retried later, and the token's limiter pauses."""
    sandbox.faults.rate_limit_qps = 1
    for i in range(3):
        await dispatcher.outbox.put([new_event(f"r{i}")])
        await dispatcher.drain_once()
    assert sandbox.state.counters.by_code.get("40100", 0) >= 1
    sandbox.faults.rate_limit_qps = 0
    deadline = time.time() + 5
    while (await dispatcher.outbox.stats()).sent < 3 and time.time() < deadline:
        await dispatcher.drain_once()
    assert (await dispatcher.outbox.stats()).sent == 3


async def test_bad_token_dead_letters_without_splitting(dispatcher: Dispatcher,
                                                        sandbox: Sandbox) -> None:
    """An auth failure cannot be fixed by splitting: one request, all dead-lettered."""
    sandbox.state.tokens = {PIXEL: {"another-token-000"}}
    await dispatcher.outbox.put([new_event(str(i)) for i in range(8)])
    await dispatcher.drain_once()
    assert sandbox.state.counters.requests == 1
    dead = await dispatcher.outbox.find(RecordQuery(state=DEAD))
    assert len(dead) == 8 and dead[0].result and dead[0].result["code"] == 40105


async def test_partial_success_dead_letters_only_the_failed(dispatcher: Dispatcher,
                                                            sandbox: Sandbox) -> None:
    """With code 20001, the events TikTok names are dead-lettered and the rest are sent."""
    sandbox.faults.partial_rate = 0.3
    await dispatcher.outbox.put([new_event(str(i)) for i in range(40)])
    await dispatcher.drain_once()
    stats = await dispatcher.outbox.stats()
    assert stats.sent + stats.dead == 40
    assert stats.sent == len(sandbox.state.events) and 0 < stats.dead < 40


async def test_too_old_events_are_dead_lettered(dispatcher: Dispatcher, sandbox: Sandbox) -> None:
    """An event that would be older than TikTok accepts at its next try is given up on."""
    dispatcher.policy = RetryPolicy(base=10, max_event_age=5)
    sandbox.faults.error_rate = 1.0
    await dispatcher.outbox.put([new_event("old")])
    await dispatcher.drain_once()
    [record] = await dispatcher.outbox.find(RecordQuery(event_id="old"))
    assert record.state == DEAD and record.result and "too old" in record.result["message"]


async def test_workers_start_and_drain(dispatcher: Dispatcher, sandbox: Sandbox) -> None:
    """Started workers deliver what is notified; stop() returns once they are done."""
    dispatcher.start()
    await dispatcher.outbox.put([new_event("w1")])
    dispatcher.notify()
    deadline = time.time() + 5
    while not sandbox.state.events and time.time() < deadline:
        await __import__("asyncio").sleep(0.02)
    await dispatcher.stop(timeout=5)
    assert [e.event_id for e in sandbox.state.events] == ["w1"]
    assert not dispatcher.running


async def test_batches_stay_under_the_request_byte_limit(dispatcher: Dispatcher,
                                                        sandbox: Sandbox) -> None:
    """A claimed batch that would pass max_request_bytes goes as several requests, all sent."""
    dispatcher.settings.max_request_bytes = 20_000
    big = [NewEvent("shop", "CompletePayment", f"b{i}", int(time.time()), json.dumps({
        "event": "CompletePayment", "event_time": int(time.time()), "event_id": f"b{i}",
        "properties": {"description": "x" * 900}})) for i in range(60)]
    await dispatcher.outbox.put(big)
    await dispatcher.drain_once()
    assert (await dispatcher.outbox.stats()).sent == 60
    assert sandbox.state.counters.requests >= 3  # about 57 KB of events, 20 KB a request


async def test_the_byte_limit_counts_bytes_not_characters(dispatcher: Dispatcher,
                                                         sandbox: Sandbox) -> None:
    """Non-ASCII text is measured as the UTF-8 bytes sent: two bytes for each "é"."""
    dispatcher.settings.max_request_bytes = 20_000
    await dispatcher.outbox.put([NewEvent("shop", "CompletePayment", f"u{i}", int(time.time()),
                                          json.dumps({"event": "CompletePayment", "event_id": f"u{i}",
                                                      "event_time": int(time.time()),
                                                      "properties": {"description": "é" * 450}},
                                                     ensure_ascii=False)) for i in range(60)])
    await dispatcher.drain_once()
    assert (await dispatcher.outbox.stats()).sent == 60
    assert sandbox.state.counters.requests >= 3  # ~57 KB as sent; ~30 KB counted as characters
