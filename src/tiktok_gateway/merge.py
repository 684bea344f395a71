"""Copies of one event into one: the union of their match keys.

The browser snippet, the shop's backend and the platform's webhook often send the same
order. TikTok merges a pixel event with an Events API event, but of two Events API copies it
keeps the first and drops the second, so the gateway merges its own copies before sending:
each hashed email, phone and external_id of either copy, and the first value of each plain
key. Of the values that are not match keys (value, currency, contents), a copy from a signed
webhook or a server key wins over the browser's, which anyone with the public key can send.
"""

from __future__ import annotations

from typing import Any

from .tiktok.schema import HASHED_USER_FIELDS, PLAIN_USER_FIELDS

BROWSER = "browser"  # the least trusted source: a public key in a web page


def outranks(copy_source: str, stored_source: str) -> bool:
    """Whether a copy's properties replace the stored event's."""
    return stored_source == BROWSER and copy_source not in ("", BROWSER)


def merge_payloads(stored: dict[str, Any], copy: dict[str, Any], *,
                   copy_wins: bool = False) -> tuple[dict[str, Any], list[str]]:
    """The stored 2.0 item with the copy's match keys added; and the names of those added."""
    user = dict(stored.get("user") or {})
    theirs = copy.get("user") or {}
    added = []
    for key in HASHED_USER_FIELDS:
        new = [v for v in theirs.get(key) or () if v not in (user.get(key) or ())]
        if new:
            user[key] = [*(user.get(key) or ()), *new]
            added.append(key)
    for key in PLAIN_USER_FIELDS:
        if theirs.get(key) and not user.get(key):
            user[key] = theirs[key]
            added.append(key)
    merged = {**stored, "user": user} if user else dict(stored)
    if copy_wins and copy.get("properties"):
        merged["properties"] = copy["properties"]
    return merged, added
