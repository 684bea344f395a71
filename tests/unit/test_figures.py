"""The dashboard's figures, from known counters and request logs."""

from __future__ import annotations

from tiktok_gateway.figures import EMQ_WEIGHTS, data_quality, outcome_totals, tag_health
from tiktok_gateway.outbox import Backlog, RequestLog

NOW = 1_800_000_000.0
MINUTE = int(NOW // 60) - 5


def counters(rows: list[tuple[str, str, int]]) -> list[tuple[int, str, str, str, int]]:
    return [(MINUTE, "shop", event, name, value) for event, name, value in rows]


def test_three_of_four_purchases_with_email_is_75_percent() -> None:
    """The share of events carrying a field is its count over events received."""
    [quality] = data_quality(counters([("CompletePayment", "received", 4),
                                       ("CompletePayment", "has:email", 3)]))
    assert quality.share("email") == 0.75
    assert quality.share("phone") == 0


def test_match_quality_estimate_uses_the_shown_weights() -> None:
    """Full coverage of every key scores 10; email alone at 50 % scores half its weight."""
    full = [("Purchase", "received", 2)] + [("Purchase", f"has:{k}", 2) for k in EMQ_WEIGHTS]
    assert data_quality(counters(full))[0].match_quality == 10.0
    half = data_quality(counters([("Purchase", "received", 2), ("Purchase", "has:email", 1)]))
    assert half[0].match_quality == EMQ_WEIGHTS["email"] / 2


def test_advice_names_missing_keys_and_event_ids() -> None:
    """Advice asks for the missing strongest keys and flags events without a shared id."""
    [quality] = data_quality(counters([("AddToCart", "received", 10),
                                       ("AddToCart", "has:email", 10),
                                       ("AddToCart", "has:shared_event_id", 4)]))
    advice = " ".join(quality.advice())
    assert "ttclid" in advice and "Send the customer's email" not in advice
    assert "60% of these events had no event_id" in advice


def test_tag_health_success_rate_latency_and_errors() -> None:
    """Success rate counts delivered requests; errors group by code and message."""
    def log(outcome: str, code: int | None, message: str, latency: float, at: float) -> RequestLog:
        return RequestLog(at, "shop", 10, False, outcome, code, message, None, 200, latency)

    requests = [log("delivered", 0, "OK", 0.1, NOW - 100), log("delivered", 0, "OK", 0.3, NOW - 90),
                log("retry", 40100, "Too many requests", 0.05, NOW - 80),
                log("retry", 40100, "Too many requests", 0.05, NOW - 20),
                log("rejected", 40002, "data.0.event_id: Not a valid string", 0.2, NOW - 10)]
    backlog = Backlog(by_destination={"shop": {"pending": 3, "dead": 1}})
    [health] = tag_health(["shop"], counters([("CompletePayment", "delivered", 20)]), requests,
                          backlog, 3600, 60, now=NOW)
    assert health.requests == 5 and health.success_rate == 0.4
    assert health.events_sent == 20
    assert [(e.code, e.count) for e in health.errors] == [(40100, 2), (40002, 1)]
    assert health.errors[0].last_seen == NOW - 20
    assert health.latency(0.5) == 0.1
    assert (health.pending, health.dead) == (3, 1)
    assert sum(b.events for b in health.series) == 20
    assert sum(b.failed for b in health.series) == 3


def test_outcome_totals() -> None:
    """Filters of every reason add up under one total."""
    totals = outcome_totals(counters([("X", "received", 5), ("X", "filtered:consent", 2),
                                      ("X", "filtered:session", 1), ("X", "dead", 1)]))
    assert (totals["received"], totals["filtered"], totals["dead"]) == (5, 3, 1)


def test_a_share_is_never_rounded_to_all_or_nothing() -> None:
    from tiktok_gateway.figures import share_text

    assert [share_text(v) for v in (1.0, 0.996, 0.994, 0.5, 0.004, 0.0, None)] == [
        "100%", "99%", "99%", "50%", "<1%", "0%", "–"]


def test_the_status_line_says_retrying_only_when_it_retries() -> None:
    from tiktok_gateway.summary import status_line

    ok = RequestLog(100.0, "shop", 5, False, "delivered", 0, "OK", "r1", 200, 0.1)
    outage = RequestLog(110.0, "shop", 5, False, "retry", None, "", None, 503, 0.1)
    refused = RequestLog(120.0, "shop", 5, False, "rejected", 40105,
                         "Access token is invalid or has expired.", "r2", 200, 0.1)
    assert status_line([ok], 0, 130.0).text.startswith("Delivering: the last request")
    failing = status_line([ok, outage], 5, 130.0)
    assert failing.kind == "bad" and failing.text.endswith("5 event(s) waiting, retrying with backoff.")
    dead = status_line([ok, outage, refused], 0, 130.0).text
    assert "2 failed request(s) in a row" in dead and "dead-lettered" in dead
    assert "retrying" not in dead
