"""TikTok Events API 2.0: names, limits, codes and the response envelope.

Facts come from `shared/tiktok-events-api.md`; where TikTok has not confirmed a value
it is a default that the configuration can change, and the docs say so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict

from .codes import CODE_PARTIAL

TRACK_PATH = "/open_api/v1.3/event/track/"
LEGACY_TRACK_PATH = "/open_api/v1.3/pixel/track/"
LEGACY_BATCH_PATH = "/open_api/v1.3/pixel/batch/"
DEFAULT_BASE_URL = "https://business-api.tiktok.com"

MAX_EVENTS_PER_REQUEST = 1000
# TikTok publishes no byte limit; 1 MB keeps far below anything reported to fail. UNCONFIRMED,
# so it is a setting (`tiktok.max_request_bytes`); batches that would pass it are split.
MAX_REQUEST_BYTES = 1_000_000

EVENT_SOURCES = frozenset({"web", "app", "offline", "crm"})
CONTENT_TYPES = frozenset({"product", "product_group"})

WEB_STANDARD_EVENTS = frozenset(
    {
        "AddPaymentInfo", "AddToCart", "AddToWishlist", "ApplicationApproval",
        "CompleteRegistration", "Contact", "CustomizeProduct", "Download", "FindLocation",
        "InitiateCheckout", "Lead", "Purchase", "Schedule", "Search", "StartTrial",
        "SubmitApplication", "Subscribe", "ViewContent",
    }
)
# Older names that TikTok and every integration still accept.
LEGACY_STANDARD_EVENTS = frozenset({"ClickButton", "CompletePayment", "PlaceAnOrder", "SubmitForm"})
APP_STANDARD_EVENTS = frozenset(
    {
        "AchieveLevel", "AddPaymentInfo", "AddToCart", "AddToWishlist", "Checkout",
        "CompleteTutorial", "CreateGroup", "CreateRole", "GenerateLead", "InAppADClick",
        "InAppADImpr", "InstallApp", "JoinGroup", "LaunchAPP", "LoanApplication", "LoanApproval",
        "LoanDisbursal", "Login", "Purchase", "Rate", "Registration", "Search", "SpendCredits",
        "StartTrial", "Subscribe", "UnlockAchievement", "ViewContent",
    }
)
STANDARD_EVENTS = WEB_STANDARD_EVENTS | LEGACY_STANDARD_EVENTS
# A completed order, under either name a destination may choose.
PURCHASE_EVENTS = frozenset({"CompletePayment", "Purchase"})
# Events for which TikTok recommends value and currency.
VALUE_EVENTS = frozenset(
    {"Purchase", "CompletePayment", "PlaceAnOrder", "AddToCart", "InitiateCheckout",
     "ViewContent", "AddPaymentInfo", "StartTrial", "Subscribe"}
)

HASHED_USER_FIELDS = ("email", "phone", "external_id")
PLAIN_USER_FIELDS = ("ttclid", "ttp", "ip", "user_agent", "locale")
APP_USER_FIELDS = ("idfa", "idfv", "gaid", "att_status")
# Sent by integrators, absent from TikTok's transcribed reference: UNCONFIRMED.
UNCONFIRMED_USER_FIELDS = ("first_name", "last_name", "zip_code", "city", "state", "country")

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
SHA256_HEX_ANY_CASE = re.compile(r"^[0-9a-fA-F]{64}$")
PIXEL_CODE = re.compile(r"^[0-9A-Z]{20}$")
EVENT_SET_ID = re.compile(r"^[0-9]{15,20}$")

class TrackResponse(BaseModel):
    """TikTok's response envelope: `{code, message, request_id, data}`."""

    model_config = ConfigDict(extra="allow")

    code: int
    message: str = ""
    request_id: str | None = None
    data: dict[str, Any] | None = None

    @property
    def partial(self) -> bool:
        return self.code == CODE_PARTIAL

    def failed_indexes(self) -> dict[int, str]:
        """Indexes of the events a partial success rejected, with TikTok's message.

        The body of a 20001 is UNCONFIRMED; we read `data.failed_events[].{index,message}`,
        the layout our sandbox answers, and return nothing when it is absent.
        """
        failed = (self.data or {}).get("failed_events") or []
        out: dict[int, str] = {}
        for item in failed:
            if isinstance(item, dict) and isinstance(item.get("index"), int):
                out[item["index"]] = str(item.get("message", "rejected"))
        return out


def byte_chunks(sizes: Sequence[int], limit: int) -> list[slice]:
    """Consecutive runs of events, by their JSON sizes, whose `data` list fits in `limit`
    bytes (a comma between two); an event larger than the limit on its own goes alone."""
    runs, start, used = [], 0, 0
    for index, size in enumerate(sizes):
        if index > start and used + 1 + size > limit:
            runs.append(slice(start, index))
            start, used = index, 0
        used += size + (index > start)
    if sizes:
        runs.append(slice(start, len(sizes)))
    return runs


def envelope_bytes(pixel_id: str, *, test_event_code: str | None = None,
                   event_source: str = "web", partner_name: str | None = "tiktok-gateway") -> int:
    """The size of a request body with an empty `data` list."""
    return len(orjson.dumps(build_request(pixel_id, [], test_event_code=test_event_code,
                                          event_source=event_source, partner_name=partner_name)))


def build_request_bytes(
    pixel_id: str,
    payloads: list[str],
    *,
    test_event_code: str | None = None,
    event_source: str = "web",
    partner_name: str | None = "tiktok-gateway",
) -> bytes:
    """The same body as build_request, with `data` spliced from events already in JSON.

    The outbox stores each event as the JSON the gateway wrote, so decoding and encoding it
    again for every request would only burn time.
    """
    return splice_request(pixel_id, ",".join(payloads).encode(), test_event_code=test_event_code,
                          event_source=event_source, partner_name=partner_name)


def splice_request(
    pixel_id: str,
    data: bytes,
    *,
    test_event_code: str | None = None,
    event_source: str = "web",
    partner_name: str | None = "tiktok-gateway",
) -> bytes:
    """A request body around `data`: the JSON of its events, comma-separated."""
    head = build_request(pixel_id, [], test_event_code=test_event_code,
                         event_source=event_source, partner_name=partner_name)
    prefix = orjson.dumps(head)[:-len(b"]}")]  # drop the closing "]}" of the empty data list
    return prefix + data + b"]}"


def build_request(
    pixel_id: str,
    data: list[dict[str, Any]],
    *,
    test_event_code: str | None = None,
    event_source: str = "web",
    partner_name: str | None = "tiktok-gateway",
) -> dict[str, Any]:
    """An Events API 2.0 request body for one pixel (or event set)."""
    body: dict[str, Any] = {"event_source": event_source, "event_source_id": pixel_id}
    if partner_name:
        body["partner_name"] = partner_name
    if test_event_code:
        body["test_event_code"] = test_event_code
    body["data"] = data
    return body
