"""One contract for every outbox backend."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tiktok_gateway.exceptions import OutboxError
from tiktok_gateway.outbox import (
    DEAD,
    PENDING,
    SENT,
    Backend,
    Backlog,
    Leg,
    NewEvent,
    Outcome,
    RecordQuery,
    RequestLog,
    StoreOptions,
    open_store,
)
from tiktok_gateway.pairing import PIXEL as PIXEL_SIDE
from tiktok_gateway.pairing import SERVER as SERVER_SIDE
from tiktok_gateway.pairing import classify

BACKENDS = ["memory", "sqlite", "postgres"]
OK = Outcome(0, "OK", "202611241200000000000000000000000000")


def _open(request: pytest.FixtureRequest, tmp_path: Path,
          options: StoreOptions | None = None) -> Any:
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/outbox.db"
    else:
        url = request.getfixturevalue("postgres_url")
    return open_store(url, options).outbox  # each backend's object serves every contract


@pytest.fixture(params=BACKENDS)
async def outbox(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """An empty store of each backend: its outbox, read side and telemetry in one object."""
    store = _open(request, tmp_path)
    yield store
    await store.close()


@pytest.fixture(params=BACKENDS)
async def short_window(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """A store whose event dedup window is 0.2 s, and whose order window an hour."""
    store = _open(request, tmp_path, StoreOptions(dedup_window=0.2, order_window=3600))
    yield store
    await store.close()


def event(event_id: str, *, destination: str = "shop", name: str = "CompletePayment",
          test_code: str = "") -> NewEvent:
    payload = json.dumps({"event": name, "event_id": event_id})
    return NewEvent(destination, name, event_id, int(time.time()), payload, test_code)


async def test_put_then_claim_returns_events_oldest_first(outbox: Backend) -> None:
    """Stored events come back from claim in order, with their payload intact."""
    assert await outbox.put([event("a"), event("b"), event("c")]) == [True, True, True]
    claimed = await outbox.claim(10, lease=30)
    assert [r.event_id for r in claimed] == ["a", "b", "c"]
    assert claimed[0].data == {"event": "CompletePayment", "event_id": "a"}


async def test_claim_respects_limit_and_lease(outbox: Backend) -> None:
    """Claimed records are not claimed again while their lease runs."""
    await outbox.put([event(str(i)) for i in range(5)])
    first = await outbox.claim(3, lease=30)
    second = await outbox.claim(10, lease=30)
    assert len(first) == 3 and len(second) == 2
    assert await outbox.claim(10, lease=30) == []


async def test_expired_lease_is_claimed_again(outbox: Backend) -> None:
    """A crashed worker's lease runs out and another worker takes the events."""
    await outbox.put([event("a")])
    assert len(await outbox.claim(10, lease=0.2)) == 1
    await asyncio.sleep(0.3)
    assert [r.event_id for r in await outbox.claim(10, lease=30)] == ["a"]


async def test_claim_never_mixes_destinations_or_test_codes(outbox: Backend) -> None:
    """One claim is one destination and one test code: test and live never share a request."""
    await outbox.put([event("1"), event("2", test_code="T1"), event("3", destination="other"),
                      event("4")])
    groups = []
    while records := await outbox.claim(10, lease=30):
        groups.append({(r.destination, r.test_event_code) for r in records})
    assert all(len(g) == 1 for g in groups)
    assert len(groups) == 3


async def test_duplicates_are_dropped_within_the_window(outbox: Backend) -> None:
    """Same destination, event name and event_id is stored once; another name is not a duplicate."""
    assert await outbox.put([event("a"), event("a")]) == [True, False]
    assert await outbox.put([event("a")]) == [False]
    assert await outbox.put([event("a", name="AddToCart"), event("a", destination="x")]) == [True, True]
    assert await outbox.put([event("a", test_code="T")]) == [True]


async def test_mark_sent(outbox: Backend) -> None:
    """Sent events leave the queue and keep TikTok's answer."""
    await outbox.put([event("a")])
    [record] = await outbox.claim(10, lease=30)
    await outbox.mark_sent([record.id], OK)
    assert await outbox.claim(10, lease=30) == []
    [found] = await outbox.find(RecordQuery(event_id="a"))
    assert found.state == SENT and found.result == {"code": 0, "message": "OK",
                                                    "request_id": OK.request_id}


async def test_mark_failed_retries_later(outbox: Backend) -> None:
    """A retryable failure comes back after retry_at, with the attempt counted."""
    await outbox.put([event("a")])
    [record] = await outbox.claim(10, lease=30)
    await outbox.mark_failed([record.id], Outcome(None, "timed out"), time.time() + 0.2)
    assert await outbox.claim(10, lease=30) == []
    await asyncio.sleep(0.3)
    [again] = await outbox.claim(10, lease=30)
    assert again.attempts == 1 and again.state == PENDING


async def test_dead_letter_and_replay(outbox: Backend) -> None:
    """retry_at=None dead-letters with the reason; replay queues it again."""
    await outbox.put([event("a"), event("b", destination="other")])
    records = []
    while batch := await outbox.claim(10, lease=30):
        records += batch
    rejected = Outcome(40002, "data.0.event_id: Not a valid string", "RID")
    await outbox.mark_failed([r.id for r in records], rejected, None)
    dead = await outbox.find(RecordQuery(state=DEAD))
    assert {r.event_id for r in dead} == {"a", "b"}
    assert dead[0].result and dead[0].result["code"] == 40002
    stats = await outbox.stats()
    assert (stats.pending, stats.dead) == (0, 2)
    assert await outbox.replay(destination="shop\x00") == 0  # matches nothing, not an error
    assert await outbox.replay(destination="shop") == 1
    [back] = await outbox.claim(10, lease=30)
    assert back.event_id == "a" and back.attempts == 0
    assert await outbox.replay(since=time.time() + 60) == 0


async def test_stats(outbox: Backend) -> None:
    """Stats count pending, sent and dead, per destination, with the oldest pending time."""
    before = time.time()
    await outbox.put([event("a"), event("b"), event("c", destination="other")])
    [first, *_] = await outbox.claim(1, lease=30)
    await outbox.mark_sent([first.id], OK)
    stats = await outbox.stats()
    assert (stats.pending, stats.sent, stats.dead) == (2, 1, 0)
    assert stats.by_destination["shop"]["sent"] == 1
    assert stats.oldest_pending_at is not None and stats.oldest_pending_at >= before - 1
    [dead] = await outbox.claim(1, lease=30)
    await outbox.mark_failed([dead.id], OK, retry_at=None)
    stats = await outbox.stats()
    assert (stats.pending, stats.sent, stats.dead) == (1, 1, 1)


async def test_backlog_agrees_with_stats(outbox: Backend) -> None:
    """The backlog (health, gauges, backpressure) counts what stats counts, and its oldest
    pending event moves on as the oldest ones are delivered or dead-lettered."""
    await outbox.put([event("a")])
    await asyncio.sleep(0.01)
    await outbox.put([event("b"), event("c", destination="other")])
    await asyncio.sleep(0.01)
    await outbox.put([event("d", test_code="T1")])
    records = {r.event_id: r for r in await outbox.find(RecordQuery())}

    async def agrees() -> tuple[int, int, float | None, dict[str, dict[str, int]]]:
        backlog, stats = await outbox.backlog(), await outbox.stats()
        assert backlog == Backlog.of(stats)
        assert await outbox.pending() == backlog.pending  # the backpressure check agrees
        return backlog.pending, backlog.dead, backlog.oldest_pending_at, backlog.by_destination

    created = {event_id: record.created_at for event_id, record in records.items()}
    both = {"shop": {"pending": 3, "dead": 0}, "other": {"pending": 1, "dead": 0}}
    assert await agrees() == (4, 0, created["a"], both)
    while await outbox.claim(10, lease=30):  # claimed events are still pending, under a lease
        pass
    assert await agrees() == (4, 0, created["a"], both)
    await outbox.mark_sent([records["a"].id], OK)
    both["shop"]["pending"] = 2
    assert await agrees() == (3, 0, created["b"], both)
    await outbox.mark_failed([records["b"].id, records["c"].id], OK, None)
    both = {"shop": {"pending": 1, "dead": 1}, "other": {"pending": 0, "dead": 1}}
    assert await agrees() == (1, 2, created["d"], both)
    await outbox.mark_sent([records["d"].id], OK)
    assert await agrees() == (0, 2, None, {"shop": {"pending": 0, "dead": 1},
                                           "other": {"pending": 0, "dead": 1}})


async def test_concurrent_puts_all_land(outbox: Backend) -> None:
    """Many concurrent writers (group commit) lose nothing."""
    await asyncio.gather(*(outbox.put([event(f"{i}-{j}") for j in range(10)]) for i in range(50)))
    assert (await outbox.stats()).pending == 500


async def test_find_filters(outbox: Backend) -> None:
    """find() matches on event_id, order_id, event name, state, test code and time."""
    before = time.time() - 1
    await outbox.put([
        NewEvent("shop", "CompletePayment", "o1_CompletePayment", int(time.time()), "{}",
                 order_id="o1"),
        NewEvent("shop", "AddToCart", "a1", int(time.time()), "{}", test_event_code="T1"),
    ])
    assert [r.event_id for r in await outbox.find(RecordQuery(order_id="o1"))] == [
        "o1_CompletePayment"]
    assert [r.event_id for r in await outbox.find(RecordQuery(event_name="AddToCart"))] == ["a1"]
    assert [r.event_id for r in await outbox.find(RecordQuery(test_only=True))] == ["a1"]
    assert len(await outbox.find(RecordQuery(since=before))) == 2
    assert await outbox.find(RecordQuery(since=time.time() + 60)) == []
    assert await outbox.find(RecordQuery(event_id="o1\x00")) == []  # a search, not an error
    record = (await outbox.find(RecordQuery(order_id="o1")))[0]
    assert (await outbox.get(record.id)) == record
    assert await outbox.get(999_999) is None


async def test_unsampled_live_events_keep_only_their_outcome(outbox: Backend) -> None:
    """After delivery, the inspector keeps sampled and test events whole, others only the answer."""
    await outbox.put([
        NewEvent("shop", "X", "kept", int(time.time()), '{"a":1}', inbound='{"b":2}', sampled=True),
        NewEvent("shop", "X", "dropped", int(time.time()), '{"a":1}', inbound='{"b":2}'),
    ])
    records = await outbox.claim(10, lease=30)
    await outbox.mark_sent([r.id for r in records], OK)
    [kept] = await outbox.find(RecordQuery(event_id="kept"))
    [trimmed] = await outbox.find(RecordQuery(event_id="dropped"))
    assert (kept.payload, kept.inbound) == ('{"a":1}', '{"b":2}')
    assert (trimmed.payload, trimmed.inbound) == ("", None)
    assert trimmed.result and trimmed.result["code"] == 0
    inspectable = await outbox.find(RecordQuery(inspectable=True))
    assert [r.event_id for r in inspectable] == ["kept"]


async def test_replay_by_id(outbox: Backend) -> None:
    """One dead letter can be replayed alone."""
    await outbox.put([event("a"), event("b")])
    records = await outbox.claim(10, lease=30)
    await outbox.mark_failed([r.id for r in records], Outcome(40002, "bad"), None)
    assert await outbox.replay(ids=[records[0].id]) == 1
    assert [r.event_id for r in await outbox.claim(10, lease=30)] == ["a"]


async def test_telemetry_counters_add_up(outbox: Backend) -> None:
    """Counters from several flushes add up per minute; the request log is newest first."""
    minute = int(time.time() // 60)
    key = (minute, "shop", "CompletePayment", "received")
    await outbox.telemetry.add({key: 3}, [])
    await outbox.telemetry.add({key: 2, (minute, "shop", "CompletePayment", "has:email"): 4}, [
        RequestLog(time.time() - 5, "shop", 5, False, "delivered", 0, "OK", "R1", 200, 0.1),
        RequestLog(time.time(), "shop", 1, True, "retry", 40100, "slow down", None, 200, 0.2)])
    rows = await outbox.telemetry.counters(time.time() - 120)
    assert (minute, "shop", "CompletePayment", "received", 5) in rows
    assert (minute, "shop", "CompletePayment", "has:email", 4) in rows
    assert await outbox.telemetry.counters(time.time() + 120) == []
    log = await outbox.telemetry.requests(time.time() - 60)
    assert [(r.code, r.test) for r in log] == [(40100, True), (0, False)]


async def test_concurrent_claims_never_overlap(outbox: Backend) -> None:
    """Workers claiming at the same time never get the same event."""
    await outbox.put([event(str(i)) for i in range(300)])

    async def worker() -> list[int]:
        ids: list[int] = []
        while batch := await outbox.claim(7, lease=30):
            ids += [r.id for r in batch]
        return ids

    claimed = [i for ids in await asyncio.gather(*(worker() for _ in range(6))) for i in ids]
    assert len(claimed) == 300 == len(set(claimed))


async def test_counters_are_written_with_the_events(outbox: Backend) -> None:
    """put() stores the request's counters and counts duplicates; marks count outcomes."""
    minute = int(time.time() // 60)
    received = {(minute, "shop", "CompletePayment", "received"): 3}
    await outbox.put([event("a"), event("a"), event("b")], received)
    records = await outbox.claim(10, lease=30)
    await outbox.mark_sent([records[0].id], OK)
    await outbox.mark_failed([records[1].id], Outcome(None, "timeout"), time.time() + 60)
    rows = {(name, value) for _m, _d, _e, name, value in
            await outbox.telemetry.counters(time.time() - 120)}
    assert rows >= {("received", 3), ("duplicate", 1), ("delivered", 1), ("retried", 1)}


async def test_one_failing_write_does_not_fail_the_others(tmp_path: Path) -> None:
    """SQLite group commit: a write that fails leaves the writes sharing its transaction intact."""
    store = open_store(f"sqlite:///{tmp_path}/isolation.db").outbox
    minute = int(time.time() // 60)
    broken = NewEvent("shop", "X", "bad", int(time.time()), None)  # type: ignore[arg-type]
    try:
        results = await asyncio.gather(
            store.put([event("a")]),
            store.put([broken], {(minute, "shop", "X", "received"): 1}),
            store.put([event("b")]), return_exceptions=True)
        assert results[0] == [True] and results[2] == [True]
        assert isinstance(results[1], OutboxError)
        assert {r.event_id for r in await store.claim(10, lease=30)} == {"a", "b"}
        names = {row[3] for row in await store.telemetry.counters(time.time() - 120)}
        assert "received" not in names  # the failed write's counters went with it
    finally:
        await store.close()


async def test_sqlite_backlog_reads_no_delivered_event(tmp_path: Path) -> None:
    """Probes, gauges and the dashboard read the backlog every few seconds: on SQLite its
    queries go through the partial indexes, never through the table's delivered rows."""
    import sqlite3

    from tiktok_gateway.outbox.sqlite import Q

    store = open_store(f"sqlite:///{tmp_path}/plan.db").outbox
    try:
        await store.put([event("a")])  # creates the schema
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "plan.db") as conn:
        for name in ("backlog", "oldest_pending"):
            steps = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + Q[name])]
            assert not [s for s in steps if s.startswith("SCAN outbox") and "INDEX" not in s], steps


def order_event(event_id: str, order_id: str, user: dict[str, object] | None = None, *,
                source: str = "server", value: float = 10) -> NewEvent:
    payload = json.dumps({"event": "CompletePayment", "event_id": event_id,
                          "user": user or {}, "properties": {"value": value}})
    return NewEvent("shop", "CompletePayment", event_id, int(time.time()), payload,
                    order_id=order_id, source=source)


async def test_an_order_is_stored_once_past_the_event_window(short_window: Backend) -> None:
    """An order's second copy is a duplicate after the event window, and under another id."""
    assert await short_window.put([order_event("1001_CompletePayment", "1001")]) == [True]
    await asyncio.sleep(0.3)  # past the 48-hour window's stand-in
    assert await short_window.put([order_event("1001_CompletePayment", "1001")]) == [False]
    assert await short_window.put([order_event("browser-id", "1001")]) == [False]
    assert await short_window.put([order_event("a", "1002"), order_event("b", "1002")]) == [True, False]
    assert await short_window.put([order_event("plain", "")]) == [True]
    await asyncio.sleep(0.3)
    assert await short_window.put([order_event("plain", "")]) == [True]  # no order: 48 h only


async def test_copies_merge_into_the_waiting_event(outbox: Backend) -> None:
    """A copy before delivery adds its match keys (a server copy's values beat the browser's);
    a copy after delivery is late; the read side lists both copies."""
    email, phone = "e" * 64, "p" * 64
    first = order_event("7_CompletePayment", "7", {"email": [email]}, source="browser", value=1)
    assert await outbox.put([first]) == [True]
    copy = order_event("7_CompletePayment", "7", {"email": [email], "phone": [phone],
                                                  "ip": "81.2.69.142"}, value=42)
    assert await outbox.put([copy]) == [False]
    assert await outbox.merge([copy]) == [True]
    [record] = await outbox.claim(10, lease=30)
    assert record.data["user"] == {"email": [email], "phone": [phone], "ip": "81.2.69.142"}
    assert record.data["properties"] == {"value": 42}
    late = order_event("7_CompletePayment", "7", {"external_id": ["x" * 64]})
    assert await outbox.merge([late]) == [False]  # leased: in flight
    await outbox.mark_sent([record.id], OK)
    copies = await outbox.copies(record.id)
    assert [(c.merged, c.added, c.source) for c in copies] == [
        (True, ("phone", "ip"), "server"), (False, ("external_id",), "server")]


async def test_order_changes_are_kept_and_read_back(outbox: Backend) -> None:
    """A platform's cancellation or refund is kept against the order and read back in order;
    the gap report labels a delivered order refunded after sending."""
    from tiktok_gateway.gaps import gap_report
    from tiktok_gateway.outbox import OrderChange

    assert await outbox.put([order_event("9_CompletePayment", "9")]) == [True]
    [record] = await outbox.claim(10, lease=30)
    await outbox.mark_sent([record.id], OK)
    now = time.time()
    await outbox.record_change(OrderChange("9", "refunded", "shopify", now))
    await outbox.record_change(OrderChange("10", "cancelled", "woocommerce", now + 1))
    assert [c.change for c in await outbox.changes("9")] == ["refunded"]
    report = await gap_report(outbox, ["9", "10"], outbox.telemetry)
    assert report.changed == {"9": "refunded after sending", "10": "cancelled before sending"}
    assert report.delivered == 1 and report.missing == ["10"]
    assert report.labels == {"9": "delivered", "10": "never received"}


async def test_erase_deletes_every_record_of_a_customer(outbox: Backend) -> None:
    """Records holding a customer's hash (in what was sent or in the inspector's copy) go,
    with their copies; other customers' records stay."""
    mine, theirs = "a" * 64, "b" * 64
    await outbox.put([order_event("e1", "", {"email": [mine]}), order_event("e2", "", {"email": [theirs]}),
                      NewEvent("shop", "ViewContent", "e3", int(time.time()), "{}", inbound=json.dumps(
                          {"user": {"phone": [mine]}}))])
    assert await outbox.erase([mine]) == 2
    assert [r.event_id for r in await outbox.find(RecordQuery())] == ["e2"]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_dead_letters_expire_with_the_retention(backend: str, tmp_path: Path,
                                                      request: pytest.FixtureRequest) -> None:
    """A dead letter (it holds hashes) is deleted once older than the retention, like a
    delivered event."""
    url = (f"sqlite:///{tmp_path}/r.db" if backend == "sqlite"
           else request.getfixturevalue("postgres_url"))
    store: Any = open_store(url, StoreOptions(retention=0.2)).outbox
    try:
        await store.put([event("dead-1")])
        [record] = await store.claim(10, lease=30)
        await store.mark_failed([record.id], Outcome(40002, "bad"), None)
        await asyncio.sleep(0.4)
        store._last_prune = 0.0  # prune on the next claim
        await store.claim(10, lease=30)
        assert await store.find(RecordQuery(state=DEAD)) == []
    finally:
        await store.close()


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> pytest.FixtureRequest:
    return request


async def test_a_retry_scheduled_past_the_longest_wait_is_due_now(
        backend_name: pytest.FixtureRequest, tmp_path: Path) -> None:
    """A retry time further off than any wait the gateway sets was stamped by a clock since
    set back an hour: the event is due now (by the next prune on a fresh start at the
    latest), while a retry within the longest wait still waits."""
    options = StoreOptions(max_delay=600)
    store = _open(backend_name, tmp_path, options)
    await store.put([event("near"), event("far")])
    near, far = sorted(await store.claim(10, lease=30), key=lambda r: r.event_id != "near")
    await store.mark_failed([near.id], Outcome(None, "timed out"), time.time() + 300)
    await store.mark_failed([far.id], Outcome(None, "timed out"), time.time() + 3600)
    if backend_name.param != "memory":  # a store opened again prunes on its first claim
        await store.close()
        store = _open(backend_name, tmp_path, options)
    try:
        assert [r.event_id for r in await store.claim(10, lease=30)] == ["far"]
        assert await store.claim(10, lease=30) == []
    finally:
        await store.close()


async def test_every_event_is_found_by_prefix_in_any_case(outbox: Backend) -> None:
    """Queued events, later copies and filtered or rejected ones are all found by a prefix
    of their order id or event id, in any case; the orders the webhooks reported are listed,
    queued or not, the newest first."""
    from tiktok_gateway.outbox import DroppedEvent
    from tiktok_gateway.search import EventSearch, search_events

    assert await outbox.put([order_event("Ab-1_CompletePayment", "Ab-1", source="webhook"),
                             order_event("zz_CompletePayment", "zz")]) == [True, True]
    await outbox.merge([order_event("Ab-1_CompletePayment", "Ab-1", source="browser")])
    await asyncio.sleep(0.01)
    await outbox.telemetry.add({}, [], [
        DroppedEvent(time.time(), "shop", "CompletePayment", "Ab-2_CompletePayment", "Ab-2",
                     "filtered", "test order", False, "webhook"),
        DroppedEvent(time.time(), "(ingest)", "CompletePayment", "", "ab-3", "rejected",
                     "properties.currency: not ISO 4217", False, "server", '{"x": 1}')])
    total, found = await search_events(outbox, outbox.telemetry, EventSearch(prefix="aB-"))
    assert total == 4
    assert sorted((f["order_id"], f["state"]) for f in found) == [
        ("Ab-1", "duplicate"), ("Ab-1", "pending"), ("Ab-2", "filtered"), ("ab-3", "rejected")]
    [rejected] = [f for f in found if f["state"] == "rejected"]
    assert rejected["received"] == '{"x": 1}'
    _, by_id = await search_events(outbox, outbox.telemetry, EventSearch(event_id="AB-2"))
    assert [f["event_id"] for f in by_id] == ["Ab-2_CompletePayment"]
    assert (await search_events(outbox, outbox.telemetry, EventSearch(prefix="a\x00")))[0] == 0
    assert await outbox.webhook_orders(time.time() - 60, 10) == ["Ab-2", "Ab-1"]


def leg(side: str, event_id: str, *, order_id: str = "", name: str = "CompletePayment",
        state: str = "loaded", at: float | None = None, test: bool = False,
        browser: str = "Chrome 131") -> Leg:
    return Leg("shop", side, name, event_id, order_id, time.time() if at is None else at,
               state, browser, "Android 14", "1-3s" if side == PIXEL_SIDE else "", test)


async def test_legs_pair_by_event_id_then_by_order(outbox: Backend) -> None:
    """Every backend groups server legs with their pixel legs alike, so that one
    classification gives one pairing whatever the store."""
    now = time.time()
    await outbox.telemetry.add({}, [], [], [
        leg(SERVER_SIDE, "A_CompletePayment", order_id="A", state="webhook"),
        leg(PIXEL_SIDE, "A_CompletePayment", order_id="A"),
        leg(SERVER_SIDE, "B_CompletePayment", order_id="B", state="server"),
        leg(PIXEL_SIDE, "B_CompletePayment", order_id="B", state="blocked", browser="Safari 17"),
        leg(SERVER_SIDE, "M_CompletePayment", order_id="M"),
        leg(PIXEL_SIDE, "other-id", order_id="M"),
        leg(SERVER_SIDE, "N_CompletePayment", order_id="N"),
        leg(PIXEL_SIDE, "N_CompletePayment", order_id="N", name="Purchase"),
        leg(SERVER_SIDE, "D_CompletePayment", order_id="D"),
        leg(SERVER_SIDE, "T_CompletePayment", order_id="T", test=True),
        leg(PIXEL_SIDE, "P_CompletePayment", order_id="P"),
        leg(PIXEL_SIDE, "OLD", at=now - 3 * 86400),
    ])
    # The first report of a leg stands: a page reloaded does not change it.
    await outbox.telemetry.add({}, [], [], [leg(PIXEL_SIDE, "B_CompletePayment", order_id="B")])
    pairing = classify(now - 3600, now + 1, *await outbox.telemetry.pair_counts(now - 3600,
                                                                                now + 1))
    assert pairing.as_dict()["events"]["CompletePayment"] == {
        "both": 1, "server_only": 3, "pixel_only": 1, "mismatched": 2,
        "server_only_causes": {"blocked": 1, "not_loaded": 0, "consent": 0, "absent": 2}}
    assert dict(pairing.by(1)) == {"Chrome 131": 2, "Safari 17": 1}
    live = classify(now - 3600, now + 1, *await outbox.telemetry.pair_counts(
        now - 3600, now + 1, "live"))
    assert live.events["CompletePayment"].server_only == 2  # the test order left out
    assert await outbox.telemetry.pixel_reporting(["shop", "other"], now - 3600) == {"shop"}
    assert await outbox.telemetry.pixel_reporting(["shop"], now + 60) == set()
    legs = await outbox.telemetry.legs_of("M_CompletePayment", "M")
    assert sorted((x.side, x.event_id) for x in legs) == [("pixel", "other-id"),
                                                         ("server", "M_CompletePayment")]


async def test_one_incident_per_rule_and_destination(outbox: Backend) -> None:
    """An alert opens once while it fires (only its opener is told so) and resolves once."""
    telemetry = outbox.telemetry
    assert await telemetry.open_alert("auth_error", "shop", 100.0, "40105") is True
    assert await telemetry.open_alert("auth_error", "shop", 101.0, "40105 again") is False
    assert await telemetry.open_alert("auth_error", "other", 102.0, "40001") is True
    closed = await telemetry.close_alert("auth_error", "shop", 200.0)
    assert closed is not None and (closed.since, closed.message) == (100.0, "40105")
    assert await telemetry.close_alert("auth_error", "shop", 201.0) is None
    assert await telemetry.open_alert("auth_error", "shop", 300.0, "again") is True
    found = [(a.destination, a.state, a.since) for a in await telemetry.alerts(150.0)]
    assert found == [("shop", "firing", 300.0), ("other", "firing", 102.0),
                     ("shop", "resolved", 100.0)]
    assert [a.since for a in await telemetry.alerts(250.0)] == [300.0, 102.0]


async def test_sqlite_refuses_a_file_a_newer_version_made_unreadable(tmp_path: Path) -> None:
    """A file upgraded by a newer gateway opens as long as it says this version can use it;
    one that says otherwise is refused with what to do."""
    import sqlite3

    from tiktok_gateway.exceptions import SchemaError
    from tiktok_gateway.outbox.sqlite import SCHEMA_VERSION

    url = f"sqlite:///{tmp_path}/outbox.db"
    store = open_store(url)
    await store.close()
    conn = sqlite3.connect(tmp_path / "outbox.db")
    conn.execute(f"PRAGMA user_version = {1 << 16 | (SCHEMA_VERSION + 3)}")
    conn.close()
    store = open_store(url)  # additive: this version reads it
    assert await store.outbox.put([event("a")]) == [True]
    await store.close()
    conn = sqlite3.connect(tmp_path / "outbox.db")
    conn.execute(f"PRAGMA user_version = {(SCHEMA_VERSION + 1) << 16 | (SCHEMA_VERSION + 3)}")
    conn.close()
    with pytest.raises(SchemaError, match="upgraded by a newer tiktok-gateway"):
        open_store(url)
