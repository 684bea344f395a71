"""TikTok's clock, learned from the Date of its answers."""

from __future__ import annotations

import email.utils
import time

from tiktok_gateway.clock import ReferenceClock


def date_header(at: float) -> str:
    return email.utils.formatdate(at, usegmt=True)


def test_the_offset_follows_the_date_of_answers() -> None:
    clock = ReferenceClock()
    assert not clock.observed and abs(clock.now() - time.time()) < 1
    now = time.time()
    clock.observe(date_header(now - 8 * 86400), now - 0.1, now)  # our clock is 8 days fast
    assert clock.observed and abs(clock.offset + 8 * 86400) < 2
    assert abs(clock.now() - (time.time() - 8 * 86400)) < 2
    clock.observe(date_header(now + 3600), now - 0.1, now)  # then an hour slow
    assert abs(clock.offset - 3600) < 2


def test_a_second_or_so_is_noise_and_odd_headers_are_no_evidence() -> None:
    clock = ReferenceClock()
    now = time.time()
    clock.observe(date_header(now + 1), now - 0.2, now)
    assert clock.offset == 0.0
    for odd in (None, "", "yesterday", "Mon, 99 Foo 2026 99:99:99 GMT"):
        clock.observe(date_header(now - 600), now, now)
        clock.observe(odd, now, now)
        assert abs(clock.offset + 600) < 2, odd  # the last good answer stands
