"""A local TikTok Events API: same endpoints, validation, codes and envelope as TikTok.

Validation is `tiktok.lint`, the same rules `check` applies. Like TikTok, the sandbox
answers HTTP 200 with a code: 0 when it accepts (silently dropping what it cannot use,
unless strict), 40002 with the field path when it rejects, 40105/40001 for tokens, 40100
when rate limited. It records every event it accepts for the Test Events view.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from ..gcpause import collector_paused
from ..tiktok import codes, legacy, lint, schema
from .faults import Faults, FaultSettings
from .state import SandboxState, mask_token, new_request_id

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
NGINX_502 = ("<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad "
             "Gateway</h1></center><hr><center>nginx</center></body></html>")


class Sandbox:
    """The sandbox's state and its HTTP routes."""

    def __init__(self, tokens: dict[str, set[str]] | None = None, *, strict: bool = False,
                 faults: Faults | None = None) -> None:
        self.state = SandboxState(tokens)
        self.strict = strict
        self.faults = faults or Faults()
        self.app = Starlette(routes=[
            Route(schema.TRACK_PATH, self.track, methods=["POST"]),
            Route(schema.LEGACY_TRACK_PATH, self.track_legacy, methods=["POST"]),
            Route(schema.LEGACY_BATCH_PATH, self.track_legacy, methods=["POST"]),
            Route("/sandbox/events", self.events, methods=["GET", "DELETE"]),
            Route("/sandbox/requests", self.requests, methods=["GET"]),
            Route("/sandbox/faults", self.fault_settings, methods=["GET", "POST", "DELETE"]),
            Route("/sandbox/stats", self.stats, methods=["GET"]),
            Route("/", self.test_events_page, methods=["GET"]),
        ])

    # --- TikTok's endpoints ----------------------------------------------------------------

    async def track(self, request: Request) -> Response:
        return await self._receive(request, is_legacy=False)

    async def track_legacy(self, request: Request) -> Response:
        return await self._receive(request, is_legacy=True)

    async def _receive(self, request: Request, *, is_legacy: bool) -> Response:
        now = time.time()
        request_id = new_request_id(now)
        log = {"request_id": request_id, "time": now, "endpoint": request.url.path,
               "access_token": mask_token(request.headers.get("access-token"))}
        faulted = await self._fault_response(now)
        if faulted is not None:
            response, code = faulted
            self.state.log_request({**log, "status": response.status_code, "code": code}, code)
            return response
        body = await request.body()
        with collector_paused():  # a quarter of the sandbox's time went to collections
            code, message, data = self._process(body, request, request_id, is_legacy, now, log)
        self.state.log_request({**log, "status": 200, "code": code, "message": message}, code)
        return _envelope(code, message, request_id, data)

    def _process(self, raw: bytes, request: Request, request_id: str, is_legacy: bool,
                 now: float, log: dict[str, Any]) -> tuple[int, str, dict[str, Any]]:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return codes.CODE_INVALID_PARAMETER, "Invalid JSON in request body.", {}
        if is_legacy and isinstance(body, dict):
            report, v2 = legacy.lint_legacy(body, now=now)
        else:
            report, v2 = lint.lint_request(body, now=now), body
        log["body"] = redact_unhashed(body)
        source_id = v2.get("event_source_id") if isinstance(v2, dict) else None
        denied = self.faults.token_denied() or self.state.check_token(
            request.headers.get("access-token"), str(source_id or ""))
        if denied:
            return denied[0], denied[1], {}
        problem = report.first_error() or (report.first_dropped() if self.strict else None)
        if problem:
            return codes.CODE_INVALID_PARAMETER, f"{problem.field}: {problem.message}", {}
        failed = self.faults.partial_failures(len(report.events))
        accepted = [v for v in report.events if v.index not in failed]
        self.state.record(v2, accepted, request_id, request.url.path, now)
        if failed:
            failures = [{"index": i, "code": codes.CODE_INVALID_PARAMETER,
                         "message": "event rejected by the sandbox's partial-success fault"}
                        for i in failed]
            return codes.CODE_PARTIAL, f"{len(failed)} of {len(report.events)} events failed", \
                {"failed_events": failures}
        return codes.CODE_OK, "OK", {}

    async def _fault_response(self, now: float) -> tuple[Response, int] | None:
        """The faulty answer in force, with the code to log (HTTP status or TikTok's code)."""
        faults = self.faults
        if faults.in_outage(now):
            if faults.outage_kind == "hang":
                await asyncio.sleep(faults.outage_until - now)
            return Response("Service Unavailable", status_code=503,
                            headers={"Retry-After": "1"}), 503
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.should_error():
            if faults.error_kind == "html":
                return HTMLResponse(NGINX_502, status_code=502), 502
            return JSONResponse({"code": codes.CODE_INTERNAL, "message": "Internal error. "
                                 "Please retry.", "request_id": new_request_id(now)}, 500), 500
        if faults.over_rate_limit(now):
            answer = _envelope(codes.CODE_RATE_LIMITED,
                               "Too many requests. Please retry in some time.",
                               new_request_id(now), {})
            if faults.retry_after:
                answer.headers["Retry-After"] = faults.retry_after
            return answer, codes.CODE_RATE_LIMITED
        return None

    # --- the sandbox's own API -------------------------------------------------------------

    async def events(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.state.clear()
            return JSONResponse({"cleared": True})
        q = request.query_params
        live = q.get("live")
        try:
            items = self.state.query(
                source_id=q.get("event_source_id"),
                test_event_code=q.get("test_event_code"),
                live=None if live is None else live.lower() in ("1", "true", "yes"),
                since=float(q["since"]) if "since" in q else None,
                after=int(q["after"]) if "after" in q else None,
                limit=int(q.get("limit", 1000)),
            )
        except ValueError:
            return JSONResponse({"error": "since must be a Unix time; after and limit integers"},
                                400)
        return JSONResponse({"count": len(items), "events": [e.as_dict() for e in items]})

    async def requests(self, request: Request) -> Response:
        limit = int(request.query_params.get("limit", 1000))
        entries = list(self.state.requests)[-limit:]
        return JSONResponse({"count": len(entries), "requests": entries})

    async def stats(self, request: Request) -> Response:
        c = self.state.counters
        return JSONResponse({"requests": c.requests, "events": c.events,
                             "duplicates": c.duplicates, "by_code": c.by_code})

    async def fault_settings(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.faults.reset()
        elif request.method == "POST":
            try:
                given = FaultSettings.model_validate_json(await request.body())
            except ValidationError as exc:
                errors = [{"field": ".".join(map(str, e["loc"])), "message": e["msg"]}
                          for e in exc.errors(include_url=False, include_input=False)]
                return JSONResponse({"errors": errors}, 400)
            self.faults.update(given)
            # Faults add up: say which earlier ones are still in force beside those given.
            kept = self.faults.active() - set(given.model_dump(exclude_none=True))
            if kept:
                return JSONResponse({**self.faults.as_dict(), "kept_from_before": sorted(kept),
                                     "note": "fields not given keep their earlier values; "
                                             "DELETE /sandbox/faults clears them all"})
        return JSONResponse(self.faults.as_dict())

    async def test_events_page(self, request: Request) -> Response:
        q = request.query_params
        return TEMPLATES.TemplateResponse(request, "test_events.html", {
            "root": request.scope.get("root_path", ""),
            "pixel": q.get("pixel", ""), "code": q.get("code", ""),
            "strict": self.strict,
        })


def _envelope(code: int, message: str, request_id: str, data: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "request_id": request_id,
                         "data": data})


def redact_unhashed(body: Any) -> Any:
    """The body for the request log, with raw emails, phones and ids replaced.

    Only the user objects are rebuilt; the rest is shared with the body, which nobody
    changes once it is parsed.
    """
    if not isinstance(body, dict):
        return body
    for key in ("data", "batch"):
        items = body.get(key)
        if items:
            if not isinstance(items, list):
                return body
            redacted = [_redacted_item(item) for item in items]
            if all(new is old for new, old in zip(redacted, items, strict=True)):
                return body  # everything hashed, as a gateway sends it: nothing to copy
            return {**body, key: redacted}
    return _redacted_item(body)  # a 1.0 pixel/track body is one event


def _redacted_item(item: Any) -> Any:
    """The item itself when nothing in it needs redacting, else a copy with it redacted."""
    if not isinstance(item, dict):
        return item
    user, context = item.get("user"), item.get("context")
    if isinstance(user, dict) and _needs_redaction(user):
        item = {**item, "user": _redacted_user(user)}
    if (isinstance(context, dict) and isinstance(context.get("user"), dict)
            and _needs_redaction(context["user"])):
        item = {**item, "context": {**context, "user": _redacted_user(context["user"])}}
    return item


_REDACTED_KEYS = ("email", "phone", "phone_number", "external_id")


def _needs_redaction(user: dict[str, Any]) -> bool:
    for key in _REDACTED_KEYS:
        values = user.get(key)
        if isinstance(values, str):
            if _unhashed(values):
                return True
        elif isinstance(values, list) and any(_unhashed(v) for v in values):
            return True
    return False


def _redacted_user(user: dict[str, Any]) -> dict[str, Any]:
    redacted = dict(user)
    for key in _REDACTED_KEYS:
        values = user.get(key)
        if isinstance(values, str):
            redacted[key] = _redact(values)
        elif isinstance(values, list):
            redacted[key] = [_redact(v) for v in values]
    return redacted


def _unhashed(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and not schema.SHA256_HEX_ANY_CASE.match(value)


def _redact(value: Any) -> Any:
    return "[redacted: not hashed]" if _unhashed(value) else value


def create_sandbox(tokens: dict[str, set[str]] | None = None, *, strict: bool = False,
                   faults: Faults | None = None) -> Starlette:
    """The sandbox as an ASGI app; its `Sandbox` is at `app.state.sandbox`."""
    sandbox = Sandbox(tokens, strict=strict, faults=faults)
    sandbox.app.state.sandbox = sandbox
    return sandbox.app
