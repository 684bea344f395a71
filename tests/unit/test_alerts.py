"""The alert rules on snapshots a gateway could see: each fires when it should, stays quiet
otherwise, and says "cannot judge" (None) rather than guess."""

from __future__ import annotations

import time

from tiktok_gateway.alerts import Snapshot, Verdict, Weekly, evaluate
from tiktok_gateway.config import AlertSettings, DestinationSettings
from tiktok_gateway.outbox import Backlog, RequestLog

NOW = 1_790_000_000.0  # a fixed instant: the rules take the time from the snapshot
SHOP = DestinationSettings(name="shop", pixel_id="C0EXAMPLE0PIXEL00001")


def request(at: float, outcome: str = "delivered", code: int | None = 0, events: int = 10,
            status: int | None = 200, test: bool = False) -> RequestLog:
    return RequestLog(at, "shop", events, test, outcome, code, "", None, status, 0.1)


def verdicts(snap: Snapshot, settings: AlertSettings | None = None,
             dest: DestinationSettings = SHOP) -> dict[str, Verdict]:
    return {v.rule: v for v in evaluate(settings or AlertSettings(), [dest], snap)}


def snapshot(requests: list[RequestLog] | None = None, counters: list | None = None,  # type: ignore[type-arg]
             backlog: Backlog | None = None, **extra: object) -> Snapshot:
    return Snapshot(NOW, requests or [], counters or [], backlog or Backlog(), **extra)  # type: ignore[arg-type]


def test_delivery_rate_fires_below_the_threshold_and_names_the_failure() -> None:
    failing = [request(NOW - 60, "retry", None, status=503) for _ in range(3)]
    found = verdicts(snapshot([request(NOW - 120), *failing]))["delivery_rate"]
    assert found.firing is True
    assert found.message.startswith("25% of 40 events") and "HTTP 503" in found.message
    assert verdicts(snapshot([request(NOW - 60)] * 5))["delivery_rate"].firing is False


def test_delivery_rate_cannot_judge_without_requests_while_events_wait() -> None:
    waiting = Backlog(pending=4, by_destination={"shop": {"pending": 4, "dead": 0}})
    assert verdicts(snapshot(backlog=waiting))["delivery_rate"].firing is None
    assert verdicts(snapshot())["delivery_rate"].firing is False  # nothing waits: all is well


def test_auth_errors_fire_at_once_and_leave_the_delivery_rate_alone() -> None:
    found = verdicts(snapshot([request(NOW - 300), request(NOW - 10, "rejected", 40105)]))
    assert found["auth_error"].firing is True and "40105" in found["auth_error"].message
    assert found["delivery_rate"].firing is False
    fixed = verdicts(snapshot([request(NOW - 10, "rejected", 40001), request(NOW - 5)]))
    assert fixed["auth_error"].firing is False


def test_silent_fires_only_where_traffic_is_usual_at_that_hour() -> None:
    hour = time.gmtime(NOW).tm_hour
    usual = {("shop", hour): 30.0}  # 30 an hour on average at this hour last week
    assert verdicts(snapshot(usual_per_hour=usual))["silent"].firing is True
    quiet_hour = {("shop", (hour + 12) % 24): 30.0}
    assert verdicts(snapshot(usual_per_hour=quiet_hour))["silent"].firing is False
    recent = [(int(NOW // 60) - 5, "shop", "ViewContent", "received", 1)]
    assert verdicts(snapshot(counters=recent, usual_per_hour=usual))["silent"].firing is False


def test_a_test_code_left_on_for_hours_fires() -> None:
    testing = SHOP.model_copy(update={"test_event_code": "TEST42"})
    minute = int(NOW // 60)
    span = [(minute - 5 * 60 + 10, "shop", "ViewContent", "test:received", 3),
            (minute - 10, "shop", "ViewContent", "test:received", 3)]
    assert verdicts(snapshot(counters=span), dest=testing)["test_code_on"].firing is True
    assert verdicts(snapshot(counters=span[1:]), dest=testing)["test_code_on"].firing is False
    assert verdicts(snapshot(counters=span))["test_code_on"].firing is False  # no code set


def test_backlog_rules() -> None:
    backlog = Backlog(pending=1, dead=11, oldest_pending_at=NOW - 31 * 60,
                      by_destination={"shop": {"pending": 1, "dead": 11}})
    found = verdicts(snapshot(backlog=backlog))
    assert found["dead_letters"].firing is True and found["oldest_pending"].firing is True
    assert found["oldest_pending"].destination == "all"
    calm = verdicts(snapshot(backlog=Backlog(dead=10, by_destination={"shop": {"dead": 10}})))
    assert calm["dead_letters"].firing is False and calm["oldest_pending"].firing is False


def test_weekly_drops_need_enough_events_both_weeks() -> None:
    fell = Weekly(pairing=(0.6, 0.95), pairing_events=(200, 180),
                  match_quality=(5.0, 7.0), received=(500, 450))
    found = verdicts(snapshot(weekly={"shop": fell}))
    assert found["pairing_drop"].firing is True and "60%" in found["pairing_drop"].message
    assert found["match_quality_drop"].firing is True
    few = Weekly(pairing=(0.6, 0.95), pairing_events=(10, 180))
    assert "pairing_drop" not in verdicts(snapshot(weekly={"shop": few}))
