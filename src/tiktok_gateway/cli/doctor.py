"""`tiktok-gateway doctor`: what would stop a config from delivering, before it matters,
and the set-up checklist as the store has seen it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from ..checklist import Step, checklist, collect
from ..config import Settings, resolve_secret
from ..exceptions import GatewayError
from ..gateway import demo_storage_url
from ..outbox.sqlite import file_of
from ..pipeline import route_for
from ..tiktok.schema import DEFAULT_BASE_URL, EVENT_SET_ID, PIXEL_CODE

Finding = tuple[str, str]  # (level: ok | warn | error, message)


def run_checks(settings: Settings, *, timeout: float = 5.0) -> list[Finding]:
    findings: list[Finding] = [("ok", "config file is valid")]
    findings += _destinations(settings)
    findings += _keys(settings)
    findings.append(_reachability(settings.tiktok.base_url, timeout))
    return findings


def _destinations(settings: Settings) -> list[Finding]:
    if not settings.destinations:
        return [("error", "no [[destinations]]: nothing would be delivered")]
    findings: list[Finding] = []
    live = settings.tiktok.base_url.rstrip("/") == DEFAULT_BASE_URL
    for dest in settings.destinations:
        name = f"destination {dest.name!r}"
        token = resolve_secret(dest.access_token)
        if not dest.access_token:
            findings.append(("warn", f"{name}: no access token configured: demo mode, events "
                                     "go to the built-in sandbox"))
        elif token is None:
            findings.append(("error", f"{name}: access token {dest.access_token.split(':')[0]}:... "
                                      "is not set: serve would refuse to start"))
        else:
            findings.append(("ok", f"{name}: access token present (not shown)"))
        pattern = PIXEL_CODE if dest.event_source == "web" else EVENT_SET_ID
        if not pattern.match(dest.pixel_id):
            findings.append(("warn", f"{name}: pixel_id {dest.pixel_id!r} does not look like a "
                                     f"{dest.event_source} source id"))
        custom = route_for(dest, settings.delivery).options.names.custom_targets()
        if custom:
            findings.append(("warn", f"{name}: event_names maps to {', '.join(custom)}, not a "
                                     "TikTok standard event: sent as a custom event, not used "
                                     "for optimisation"))
        if dest.test_event_code and live:
            findings.append(("warn", f"{name}: test_event_code is still set while sending to "
                                     "TikTok: events stay out of reporting until you remove it"))
    return findings


def _keys(settings: Settings) -> list[Finding]:
    if not settings.keys:
        return [("error", "no [[keys]]: nobody can post events")]
    findings: list[Finding] = []
    for key in settings.keys:
        if resolve_secret(key.secret) is None:
            findings.append(("error", f"key {key.name!r}: its secret is not set"))
        if key.kind == "browser" and not key.allowed_origins:
            findings.append(("error", f"key {key.name!r}: a browser key needs allowed_origins"))
    return findings or [("ok", f"{len(settings.keys)} ingest key(s) configured")]


def _reachability(base_url: str, timeout: float) -> Finding:
    try:
        response = httpx.get(base_url, timeout=timeout)
    except httpx.HTTPError as exc:
        return ("error", f"TikTok base URL {base_url} is unreachable: {type(exc).__name__}")
    return ("ok", f"TikTok base URL {base_url} answers (HTTP {response.status_code})")


def setup_checklist(settings: Settings) -> tuple[list[Step], str | None]:
    """The checklist from the store (read only), and why it could not be read, if so. A
    SQLite file that does not exist yet is not made here: nothing has been seen."""
    demo = all(not d.access_token for d in settings.destinations)
    url = demo_storage_url(settings.storage.url) if demo else settings.storage.url
    if url.startswith("memory://") or (
            url.startswith("sqlite://") and not Path(file_of(url)).exists()):
        return checklist(settings.destinations, [], [], {}, demo=demo), None
    from ..outbox import StoreOptions, open_store

    async def read() -> list[Step]:
        store = open_store(url, StoreOptions(owner=False, auto_migrate=False))
        try:
            return await collect(settings.destinations, store.telemetry, demo=demo)
        finally:
            await store.close()

    try:
        return asyncio.run(read()), None
    except GatewayError as exc:
        return checklist(settings.destinations, [], [], {}, demo=demo), exc.message
