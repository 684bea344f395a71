"""The ingest core without HTTP: routing per destination, parse once, filters, storage."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tiktok_gateway import identity
from tiktok_gateway.config import settings_from_dict
from tiktok_gateway.events import split_events
from tiktok_gateway.ingest import Destination, Ingest, RequestContext
from tiktok_gateway.outbox import Leg, RecordQuery, Store, open_store
from tiktok_gateway.pairing import PIXEL as PIXEL_SIDE
from tiktok_gateway.pairing import SERVER as SERVER_SIDE
from tiktok_gateway.pipeline import route_for
from tiktok_gateway.telemetry import Telemetry

Factory = Callable[..., dict[str, Any]]
PIXEL = "C0EXAMPLE0PIXEL00001"


def make_ingest(*destinations: dict[str, Any]) -> tuple[Ingest, Store, list[int]]:
    settings = settings_from_dict({"destinations": list(destinations)})
    store = open_store("memory://")
    woken: list[int] = []
    ingest = Ingest([Destination(d, route_for(d, settings.delivery)) for d in settings.destinations],
                    store.outbox, store.records, Telemetry(store.telemetry),
                    on_stored=lambda: woken.append(1), inspect_sample_rate=1.0)
    return ingest, store, woken


async def test_accept_stores_one_hashed_event_per_destination(event_factory: Factory) -> None:
    """One event to two destinations is two stored records, hashed, and wakes delivery."""
    ingest, store, woken = make_ingest({"name": "a", "pixel_id": PIXEL},
                                       {"name": "b", "pixel_id": PIXEL, "purchase_event": "Purchase"})
    result = await ingest.accept([event_factory()], RequestContext())
    assert (result.accepted, result.queued, result.duplicates) == (1, 2, 0)
    records = await store.records.find(RecordQuery())
    assert sorted((r.destination, r.event_name) for r in records) == [
        ("a", "CompletePayment"), ("b", "Purchase")]
    email_hash = identity.hash_email("alice.shopper@example.com").value
    assert all(r.data["user"]["email"] == [email_hash] for r in records)
    assert "Alice" not in records[0].payload + (records[0].inbound or "")
    assert woken == [1]


async def test_each_event_is_parsed_once_per_property_map(event_factory: Factory,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Destinations sharing a property map share one parse; another map parses once more."""
    ingest, _, _ = make_ingest({"name": "a", "pixel_id": PIXEL}, {"name": "b", "pixel_id": PIXEL},
                               {"name": "c", "pixel_id": PIXEL, "property_map": {"total": "value"}})
    calls: list[object] = []
    from tiktok_gateway import pipeline

    real = pipeline.parse_event
    monkeypatch.setattr(pipeline, "parse_event", lambda raw: calls.append(raw) or real(raw))
    result = await ingest.accept([event_factory()], RequestContext())
    assert result.queued == 3 and len(calls) == 2


async def test_filters_run_before_hashing(event_factory: Factory,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """An event a destination's filter drops is never hashed for it, and says why."""
    ingest, store, _ = make_ingest({"name": "a", "pixel_id": PIXEL,
                                    "filters": {"block_events": ["purchase"]}})
    hashed: list[object] = []
    monkeypatch.setattr(identity, "hash_user", lambda *a, **k: hashed.append(a) or {})
    result = await ingest.accept([event_factory()], RequestContext())
    assert result.filtered == {"event_name": 1} and result.queued == 0
    assert hashed == [] and await store.records.find(RecordQuery()) == []


async def test_rejected_and_duplicate_events_are_counted(event_factory: Factory) -> None:
    """A bad event is rejected with its field; the second copy of an event is a duplicate."""
    ingest, _, _ = make_ingest({"name": "a", "pixel_id": PIXEL})
    good = event_factory()
    result = await ingest.accept([good, {"event": ""}, good], RequestContext())
    assert (result.accepted, result.queued, result.duplicates) == (2, 1, 1)
    assert result.rejected[0]["index"] == 1
    assert result.rejected[0]["errors"][0]["field"] == "event"


async def test_backpressure_follows_the_pending_count(event_factory: Factory) -> None:
    """Past max_pending waiting events, ingest says it is overloaded."""
    ingest, _, _ = make_ingest({"name": "a", "pixel_id": PIXEL})
    ingest._max_pending = 1
    assert not await ingest.overloaded()
    await ingest.accept([event_factory()], RequestContext())
    ingest._pending_checked = 0.0
    assert await ingest.overloaded()


def test_split_events_reads_every_body_shape() -> None:
    """One event, a list, or {"events": [...]} all become a list; a bad events key is refused."""
    assert split_events({"event": "x"}) == [{"event": "x"}]
    assert split_events([{"event": "x"}]) == split_events({"events": [{"event": "x"}]})
    from tiktok_gateway import InvalidEvent

    with pytest.raises(InvalidEvent, match="must be a list"):
        split_events({"events": "nope"})


def test_the_client_limiter_is_bounded_and_limits_ipv6_per_64() -> None:
    """Addresses of one IPv6 /64 share a bucket; a flood of addresses keeps memory bounded."""
    from tiktok_gateway.web.auth import PerClientLimiter

    limiter = PerClientLimiter()
    limiter.MAX_CLIENTS = 1000
    assert limiter.wait("web", "2001:db8:1:2::1", 2) == 0.0
    assert limiter.wait("web", "2001:db8:1:2::ffff", 2) == 0.0
    assert limiter.wait("web", "2001:db8:1:2:abcd::9", 2) > 0  # the same /64: limited
    assert limiter.wait("web", "2001:db8:1:3::1", 2) == 0.0  # another subscriber
    for i in range(5000):
        limiter.wait("web", f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", 2)
    assert len(limiter._buckets) <= 1000


async def test_server_legs_only_for_destinations_whose_pages_report_the_pixel(
        event_factory: Factory) -> None:
    """Pairing costs a shop without /tt.js nothing: only a destination with pixel legs gets
    a server leg for each stored event (and duplicates get none)."""
    ingest, store, _ = make_ingest({"name": "a", "pixel_id": PIXEL},
                                   {"name": "b", "pixel_id": "C0EXAMPLE0PIXEL00002"})
    telemetry = ingest._telemetry
    def cart(event_id: str) -> dict[str, Any]:
        return event_factory(event="add_to_cart", event_id=event_id,
                             properties={"value": 5, "currency": "USD"})

    await ingest.accept([cart("before")], RequestContext())
    telemetry.legs([Leg("a", PIXEL_SIDE, "AddToCart", "p-1", "", 1.0, "loaded")], pixel=True)
    await ingest.accept([cart("after")], RequestContext())
    await ingest.accept([cart("after")], RequestContext())  # a duplicate
    await telemetry.flush()
    server = sorted((leg.destination, leg.event_id) for leg in store.telemetry.legs.values()  # type: ignore[attr-defined]
                    if leg.side == SERVER_SIDE)
    assert server == [("a", "after")]
