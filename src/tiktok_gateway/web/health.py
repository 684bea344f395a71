"""Liveness, readiness, and what happened to one event (for `tiktok-gateway send`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..gateway import Gateway
from ..outbox import RecordQuery
from ..search import EventSearch
from .admin import AdminAuth
from .auth import KeyRing, presented_key

MAX_ID = 300


def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


class Readiness:
    """Ready to accept and deliver, or the problems; the backlog's counts for the admin only
    (a stranger learns nothing of the shop's volumes)."""

    def __init__(self, gateway: Gateway, admin: AdminAuth) -> None:
        self.gateway = gateway
        self.admin = admin

    async def endpoint(self, request: Request) -> Response:
        problems, backlog = await self.gateway.readiness()
        body: dict[str, object] = {"status": "ready" if not problems else "not ready", "problems": problems,
                "demo": self.gateway.demo}
        if backlog and self.admin.check(request):
            body["pending"], body["dead"] = backlog.pending, backlog.dead
        return JSONResponse(body, 200 if not problems else 503)


class EventStatus:
    """GET /v1/events/status?event_id=... (or order_id=...): where an event is, and what
    TikTok answered; `records` also lists the copies, filtered and rejected ones."""

    def __init__(self, gateway: Gateway, keys: KeyRing) -> None:
        self.gateway = gateway
        self.keys = keys

    async def endpoint(self, request: Request) -> Response:
        key = self.keys.find(presented_key(request))
        if key is None or key.is_browser:
            return JSONResponse({"error": "a server ingest key is required"}, 401)
        event_id = request.query_params.get("event_id") or None
        order_id = request.query_params.get("order_id") or None
        if not (event_id or order_id):
            return JSONResponse({"error": "event_id or order_id is required"}, 400)
        if any(len(v) > MAX_ID or "\x00" in v for v in (event_id or "", order_id or "")):
            return JSONResponse({"error": f"ids are at most {MAX_ID} characters"}, 400)
        records = await self.gateway.find(RecordQuery(event_id=event_id, order_id=order_id,
                                                      limit=50))
        _, found = await self.gateway.search(EventSearch(event_id=event_id, order_id=order_id,
                                                         limit=50))
        return JSONResponse({"event_id": event_id, "order_id": order_id, "records": found,
                             "deliveries": [
            {"destination": r.destination, "event": r.event_name, "state": r.state,
             "attempts": r.attempts, "test_event_code": r.test_event_code or None,
             "tiktok": r.result} for r in records]})
