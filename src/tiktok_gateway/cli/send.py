"""`tiktok-gateway send`: one event through a running gateway, then TikTok's answer."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from ..config import Settings, resolve_secret
from ..exceptions import ConfigError


@dataclass(frozen=True)
class SendOptions:
    event: str = "purchase"
    value: float | None = None
    currency: str | None = None
    email: str | None = None
    phone: str | None = None
    order_id: str | None = None
    test_event_code: str | None = None
    wait: float = 15.0


def build_event(options: SendOptions) -> dict[str, Any]:
    user = {k: v for k, v in (("email", options.email), ("phone", options.phone)) if v}
    props = {k: v for k, v in (("value", options.value), ("currency", options.currency),
                               ("order_id", options.order_id)) if v is not None}
    event: dict[str, Any] = {"event": options.event, "user": user, "properties": props}
    if not options.order_id:
        event["event_id"] = f"send-{uuid.uuid4().hex[:16]}"
    if options.test_event_code:
        event["test_event_code"] = options.test_event_code
    return event


def gateway_url_and_key(settings: Settings | None, url: str | None,
                        key: str | None) -> tuple[str, str]:
    if settings is not None:
        host = settings.server.host if settings.server.host not in ("0.0.0.0", "::") else "127.0.0.1"
        url = url or f"http://{host}:{settings.server.port}"
        if key is None:
            for candidate in settings.keys:
                secret = resolve_secret(candidate.secret)
                if candidate.kind == "server" and secret:
                    key = secret.get_secret_value()
                    break
    if not url or not key:
        raise ConfigError("no gateway URL or server key: pass --url and --key, or --config")
    return url.rstrip("/"), key


def run_send(options: SendOptions, settings: Settings | None, *, url: str | None,
             key: str | None, echo: Callable[[str], None]) -> bool:
    """Post the event, wait for delivery, print each destination's answer; True if delivered."""
    base, secret = gateway_url_and_key(settings, url, key)
    headers = {"Authorization": f"Bearer {secret}"}
    event = build_event(options)
    try:
        response = httpx.post(f"{base}/v1/events", json=event, headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        echo(f"could not reach the gateway at {base}: {exc}")
        return False
    try:
        body = response.json()
    except ValueError:
        body = {"error": response.text[:300] or "(empty body)"}
    if not isinstance(body, dict):
        body = {"error": str(body)[:300]}
    if "error" in body:  # refused as a whole: say why (a wrong key, a full outbox)
        echo(f"gateway answered HTTP {response.status_code}: {body['error']}")
        return False
    echo(f"gateway answered HTTP {response.status_code}: accepted {body.get('accepted', 0)}, "
         f"queued {body.get('queued', 0)}")
    for item in body.get("rejected", []) + body.get("warnings", []):
        for problem in item.get("errors", [item]):
            echo(f"  {problem['field']}: {problem['message']}")
    if response.status_code != 202 or not body.get("queued"):
        return False
    event_id = event.get("event_id") or _order_event_id(settings, options)
    return _wait_for_answer(base, headers, event_id, options.wait, echo)


def _order_event_id(settings: Settings | None, options: SendOptions) -> str:
    """The id the gateway derives from the order: named as the (first) destination names it."""
    from ..mapping import NameMapping, deterministic_event_id
    from ..pipeline import route_for

    names = (route_for(settings.destinations[0], settings.delivery).options.names
             if settings and settings.destinations else NameMapping())
    name, _ = names.tiktok_name(options.event)
    return deterministic_event_id(options.order_id or "", name)


def _wait_for_answer(base: str, headers: dict[str, str], event_id: str, wait: float,
                     echo: Callable[[str], None]) -> bool:
    deadline = time.monotonic() + wait
    deliveries: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        status = httpx.get(f"{base}/v1/events/status", params={"event_id": event_id},
                           headers=headers, timeout=10).json()
        deliveries = status.get("deliveries", [])
        if deliveries and all(d["state"] != "pending" for d in deliveries):
            break
        time.sleep(0.25)
    for d in deliveries:
        tiktok = d.get("tiktok") or {}
        echo(f"{d['destination']}: {d['event']} event_id={event_id} {d['state']}"
             + (f" (test {d['test_event_code']})" if d.get("test_event_code") else "")
             + f"; TikTok code {tiktok.get('code')}: {tiktok.get('message')}"
             + f" request_id {tiktok.get('request_id')}" if tiktok else
             f"{d['destination']}: {d['state']}, no answer from TikTok yet")
    return bool(deliveries) and all(d["state"] == "sent" for d in deliveries)
