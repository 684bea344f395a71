"""One error, one cause: TikTok's and the network's answers grouped for the error log.

Each answer's message carries what differs every time (TikTok's request id, a field's index,
a proxy's HTML page), so one outage would be a hundred rows of "count 1". The cause is the
message with those removed, plus what to do about it.
"""

from __future__ import annotations

import re

from .tiktok import codes

_HTML = re.compile(r"<[^>]*>")
_REQUEST_ID = re.compile(r"\b[0-9A-Fa-f]{16,}\b|\b\d{6,}\b")
_INDEX = re.compile(r"(?<=[.\[])\d+(?=[.\]]|$)|(?<=\s)\d+(?=\s|$)")
_SPACES = re.compile(r"\s+")
MAX_CAUSE = 200
AUTH_CODES = frozenset({codes.CODE_NO_PERMISSION, codes.CODE_BAD_TOKEN, codes.CODE_NOT_FOUND})
# The two answers a token gets when it no longer works: an alert's and the set-up
# checklist's words for them.
AUTH_MEANINGS = {codes.CODE_NO_PERMISSION: "the access token's user has no permission for this pixel",
                 codes.CODE_BAD_TOKEN: "the access token is missing, invalid, revoked or expired"}
AUTH_ACTION = ("generate a new access token in TikTok Events Manager (the pixel's Settings, "
               "Events API) as a user with access to the pixel, and set it as the "
               "destination's access_token")

ADVICE = {
    "unavailable": "TikTok (or the network before it) is failing; the gateway retries with "
                   "backoff. Nothing to do unless it lasts: check TikTok's status.",
    "network": "TikTok could not be reached: check this machine's DNS, firewall and proxy "
               "settings; the gateway keeps retrying.",
    "in_front": "Something between the gateway and TikTok answered (a proxy or CDN page, a "
                "redirect): check tiktok.base_url and any outbound proxy. Retried.",
    "auth": "The access token is wrong, expired or lacks access to this pixel: create a new "
            "one in TikTok Events Manager and set it, then replay the dead letters.",
    "rate": "TikTok asked the gateway to slow down; it paused and retried. Lower "
            "tiktok.rate_limit_qps if this is frequent.",
    "event": "TikTok refused these events: see the field named; fix the sender or the "
             "mapping, then replay the dead letters.",
}


def cause(code: int | None, message: str, http_status: int | None) -> str:
    """The message without what differs between answers of the same cause."""
    if code is None and http_status is not None and http_status >= 500:
        return f"TikTok unavailable (HTTP {http_status})"
    if code is None and http_status is not None and not 200 <= http_status < 300:
        return f"HTTP {http_status} from the network in front of TikTok (not TikTok's answer)"
    if code is None and http_status is not None:
        return f"HTTP {http_status} without TikTok's JSON body"
    text = _HTML.sub(" ", message)
    text = _REQUEST_ID.sub("…", text)
    text = _INDEX.sub("N", text)
    text = _SPACES.sub(" ", text).strip() or "(no message)"
    return text[:MAX_CAUSE]


def advice(code: int | None, http_status: int | None) -> str:
    """What to do about an error of this code or status."""
    if code is None:
        if http_status is None:
            return ADVICE["network"]
        return ADVICE["unavailable"] if http_status >= 500 else ADVICE["in_front"]
    answer = codes.answer_for_code(code)
    if answer is codes.Answer.RATE_LIMITED:
        return ADVICE["rate"]
    if code in AUTH_CODES:
        return ADVICE["auth"]
    if answer.retryable:
        return ADVICE["unavailable"]
    return ADVICE["event"]
