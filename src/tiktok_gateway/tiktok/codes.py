"""Every decision about what TikTok answered, in one table.

TikTok answers business errors with HTTP 200 and a non-zero `code`, and the network in
front of it answers with HTTP statuses of its own. Both are read into one `Answer` kind
here; `retry.py` decides what each kind means for the events (retry, pause, split,
dead-letter), and the client and dispatcher only ask. Facts: `shared/tiktok-events-api.md`
sections 8, 11 and 13; codes it leaves open are marked UNCONFIRMED there.
"""

from __future__ import annotations

from enum import Enum

CODE_OK = 0
CODE_PARTIAL = 20001
CODE_DATA_ERROR = 40000
CODE_NO_PERMISSION = 40001
CODE_INVALID_PARAMETER = 40002
CODE_NOT_FOUND = 40007
CODE_RATE_LIMITED = 40100
CODE_BAD_TOKEN = 40105
CODE_INTERNAL = 50000


class Answer(Enum):
    """What kind of answer a request got. `retryable`: sending the same again may work;
    `splittable`: the fault is in some of the events, so halves of the batch may pass."""

    SUCCESS = ("success", False, False)
    PARTIAL = ("partial", False, False)  # some events rejected, listed in the answer
    RETRY_LATER = ("retry_later", True, False)  # TikTok or the network failed for now
    RATE_LIMITED = ("rate_limited", True, False)  # slow down, then send the same again
    AUTH = ("auth", False, False)  # token or permission: no event can pass until fixed
    BAD_REQUEST = ("bad_request", False, True)  # a payload problem: isolate the bad events

    def __init__(self, label: str, retryable: bool, splittable: bool) -> None:
        self.label = label
        self.retryable = retryable
        self.splittable = splittable


# TikTok's codes, as peers read them (RudderStack, TikTok's own SDKs).
CODE_ANSWERS: dict[int, Answer] = {
    CODE_OK: Answer.SUCCESS,
    CODE_PARTIAL: Answer.PARTIAL,
    CODE_DATA_ERROR: Answer.BAD_REQUEST,
    CODE_NO_PERMISSION: Answer.AUTH,
    CODE_INVALID_PARAMETER: Answer.BAD_REQUEST,
    CODE_NOT_FOUND: Answer.AUTH,  # the pixel or event set does not exist for this token
    CODE_RATE_LIMITED: Answer.RATE_LIMITED,
    CODE_BAD_TOKEN: Answer.AUTH,
}


def answer_for_code(code: int) -> Answer:
    """The kind of a TikTok `code`; 5xxxx internal errors are retried, other unknown codes
    are taken as a payload problem, so that splitting finds out whether events are at fault."""
    known = CODE_ANSWERS.get(code)
    if known is not None:
        return known
    if 50000 <= code < 60000:
        return Answer.RETRY_LATER
    return Answer.BAD_REQUEST


def answer_for_status(status: int, *, json_body: bool) -> Answer | None:
    """The kind of an HTTP status when it decides alone; None when TikTok's `code` decides.

    429 is a rate limit, 408 and 5xx a fault for now. Without TikTok's JSON envelope any
    other status is a fault for now too: a redirect, a CDN's or proxy's 403 page in front of
    TikTok says nothing about the events, so they are retried, never split or dead-lettered.
    """
    if status == 429:
        return Answer.RATE_LIMITED
    if status >= 500 or status == 408:
        return Answer.RETRY_LATER
    if json_body:
        return None
    return Answer.RETRY_LATER


def is_retryable_code(code: int) -> bool:
    """Whether a non-zero TikTok code is worth retrying: rate limits and 5xxxx errors."""
    return answer_for_code(code).retryable
