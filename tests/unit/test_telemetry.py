"""What the telemetry writer keeps of events that were not queued."""

from __future__ import annotations

import time

from tiktok_gateway.outbox import DroppedEvent, Leg
from tiktok_gateway.outbox.memory import InMemoryTelemetry
from tiktok_gateway.pairing import PIXEL, SERVER
from tiktok_gateway.telemetry import MAX_BROWSER_DROPPED, MAX_PIXEL_LEGS, Telemetry


def record(i: int, source: str) -> DroppedEvent:
    return DroppedEvent(time.time(), "(ingest)", "other", f"e{i}", "", "rejected",
                        "event: not accepted from a browser key", False, source)


async def test_a_browser_flood_cannot_fill_the_store_with_records() -> None:
    """The browser key is public: of its refused events only MAX_BROWSER_DROPPED a flush are
    kept for search, while the shop's own (server key, webhooks) are all kept; the next flush
    has room again."""
    store = InMemoryTelemetry()
    telemetry = Telemetry(store)
    telemetry.dropped([record(i, "browser") for i in range(500)])
    telemetry.dropped([record(i, "server") for i in range(20)] + [record(1, "webhook")])
    assert not telemetry.has_room_for_dropped("browser") and telemetry.has_room_for_dropped("server")
    await telemetry.flush()
    kept = [d.source for d in store.dropped_log]
    assert kept.count("browser") == MAX_BROWSER_DROPPED and kept.count("server") == 20
    assert kept.count("webhook") == 1 and telemetry.dropped_lost == 500 - MAX_BROWSER_DROPPED
    assert telemetry.has_room_for_dropped("browser")


async def test_a_pixel_flood_cannot_fill_the_store_with_legs() -> None:
    """Pixel legs come with a public key: at most MAX_PIXEL_LEGS a flush are kept, while the
    server legs of stored events all are."""
    store = InMemoryTelemetry()
    telemetry = Telemetry(store)

    def legs(side: str, n: int) -> list[Leg]:
        return [Leg("shop", side, "CompletePayment", f"{side}-{i}", "", time.time(), "loaded")
                for i in range(n)]

    telemetry.legs(legs(PIXEL, MAX_PIXEL_LEGS + 300), pixel=True)
    telemetry.legs(legs(SERVER, 2000))
    await telemetry.flush()
    sides = [leg.side for leg in store.legs.values()]
    assert sides.count(PIXEL) == MAX_PIXEL_LEGS and sides.count(SERVER) == 2000
    assert telemetry.legs_lost == 300
    telemetry.legs(legs(PIXEL, 10), pixel=True)  # the next flush has room again
    await telemetry.flush()
    assert telemetry.legs_lost == 300
