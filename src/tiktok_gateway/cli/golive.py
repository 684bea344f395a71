"""`tiktok-gateway golive`: from demo mode to TikTok, checked.

Each destination must have an access token that resolves and a pixel id of its own; TikTok
must accept a test event sent with it (the test code keeps it out of reporting). The demo
store, kept apart from the live one, can then be removed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from ..causes import AUTH_ACTION, AUTH_MEANINGS
from ..config import EXAMPLE_PIXEL_ID, DestinationSettings, Settings, resolve_secret
from ..exceptions import APIError, DeliveryError
from ..gateway import demo_storage_url
from ..identity import sha256_hex
from ..outbox.sqlite import file_of
from ..tiktok.client import TikTokClient
from ..tiktok.schema import EVENT_SET_ID, PIXEL_CODE
from .doctor import Finding


def check_destination(settings: Settings, dest: DestinationSettings, test_code: str, *,
                      timeout: float = 10.0) -> list[Finding]:
    name = f"destination {dest.name!r}"
    findings: list[Finding] = []
    if dest.pixel_id == EXAMPLE_PIXEL_ID:
        findings.append(("error", f"{name}: pixel_id is still the example {EXAMPLE_PIXEL_ID}: set "
                                  "your pixel's code from TikTok Events Manager"))
    elif not (PIXEL_CODE if dest.event_source == "web" else EVENT_SET_ID).match(dest.pixel_id):
        findings.append(("warn", f"{name}: pixel_id {dest.pixel_id!r} does not look like a "
                                 f"{dest.event_source} source id"))
    if not dest.access_token:
        return [*findings, ("error", f'{name}: no access_token: set access_token = '
                                     '"env:TIKTOK_ACCESS_TOKEN" (or "file:/path") in the config '
                                     "and give it the token from Events Manager")]
    token = resolve_secret(dest.access_token)
    if token is None:
        return [*findings, ("error", f"{name}: access_token {dest.access_token.split(':')[0]}:... "
                                     "is not set in this shell")]
    try:
        request_id = asyncio.run(_send_test_event(settings, dest, token.get_secret_value(),
                                                  test_code, timeout))
    except APIError as exc:
        meaning = AUTH_MEANINGS.get(exc.code)
        detail = f"{meaning}: {AUTH_ACTION}" if meaning else exc.tiktok_message
        return [*findings, ("error", f"{name}: TikTok answered {exc.code} to a test event: "
                                     f"{detail}")]
    except DeliveryError as exc:
        return [*findings, ("error", f"{name}: TikTok could not be reached: {exc.message}")]
    findings.append(("ok", f"{name}: TikTok accepted a test event for {dest.pixel_id} with test "
                           f"code {test_code} (request_id {request_id}): look for it in Events "
                           "Manager, Test Events"))
    if dest.test_event_code:
        findings.append(("warn", f"{name}: test_event_code is set: its events stay test events "
                                 "until you remove it"))
    return findings


async def _send_test_event(settings: Settings, dest: DestinationSettings, token: str,
                           test_code: str, timeout: float) -> str | None:
    event = {"event": "ViewContent", "event_time": int(time.time()),
             "event_id": f"golive-{uuid.uuid4().hex}",
             "user": {"external_id": [sha256_hex("tiktok-gateway-golive-check")]},
             "page": {"url": "https://tiktok-gateway.invalid/golive"},
             "properties": {"content_type": "product"}}
    async with TikTokClient(token, base_url=settings.tiktok.base_url, timeout=timeout,
                            partner_name=settings.tiktok.partner_name) as client:
        [delivery] = await client.send_events(dest.pixel_id, [event], test_event_code=test_code)
    return delivery.request_id


def demo_files(settings: Settings) -> list[Path]:
    """The demo store's files (its own SQLite file, WAL and lock), if any."""
    url = demo_storage_url(settings.storage.url)
    if not url.startswith("sqlite://"):
        return []
    path = Path(file_of(url))
    return [p for p in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", ".lock")))
            if p.exists()]
