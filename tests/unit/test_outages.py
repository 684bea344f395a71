"""The outage log: a line at the start, one a minute while it lasts, one at its end."""

from __future__ import annotations

import logging

import pytest

from tiktok_gateway.outages import OutageLog


def test_one_line_a_minute_while_failing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tiktok_gateway")
    now = [1000.0]
    log = OutageLog(monotonic=lambda: now[0])
    for _ in range(30):  # 30 failed requests over 90 seconds
        log.failed("shop", None, "", 503)
        now[0] += 3
    log.failed("other", 40100, "Too many requests. Please retry in some time.", 200)
    log.succeeded("shop")
    log.succeeded("shop")  # no outage any more: nothing to say
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4, lines
    assert lines[0].startswith("requests to TikTok failing for shop: TikTok unavailable (HTTP 503)")
    assert lines[1].startswith("still failing for shop since ") and ": 21 failed requests" in lines[1]
    assert "failing for other: Too many requests. Please retry in some time. (code 40100)" in lines[2]
    assert lines[3].startswith("TikTok accepts requests for shop again after 1 min 30 s (30 failed")
