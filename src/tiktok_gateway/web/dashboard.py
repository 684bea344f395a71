"""The dashboard: tag health, data quality, inspector, live test events, dead letters.

Server-rendered with Jinja2, charts as inline SVG, no build step. Every route needs the
admin credentials; actions also need the CSRF token. Figures come from the store, so
with PostgreSQL they are the totals of every gateway process.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from .. import causes, figures, gaps, summary
from ..gateway import Gateway
from ..outbox import OutboxRecord, RecordQuery
from ..pairing import PIXEL, SERVER
from ..search import STATES as SEARCH_STATES
from ..search import EventSearch
from ..telemetry import QUALITY_FIELDS, SOURCES, USER_FIELDS, mode_includes, of_source
from ..tiktok.lint import lint_event
from .admin import AdminAuth
from .api import DashboardAPI, csv_response
from .auth import client_ip, is_trusted, parse_networks
from .charts import bar_chart
from .setup_pages import SetupPages

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
TEMPLATES.env.filters["pct"] = figures.share_text
TEMPLATES.env.filters["ms"] = lambda v: "–" if v is None else f"{v * 1000:.0f} ms"
TEMPLATES.env.filters["when"] = lambda v: "–" if not v else time.strftime(
    "%Y-%m-%d %H:%M:%S UTC", time.gmtime(v))  # one zone everywhere, as on the charts
TEMPLATES.env.filters["pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False)
Handler = Callable[[Request], Awaitable[Response]]
STATES = ("pending", "sent", "dead")
MAX_RECORD_ID = 2**63 - 1  # the largest id a database column holds
WEBHOOK_ORDERS_SHOWN = 2000  # orders the gap report page checks without an upload
MAX_ORDERS_UPLOAD = 5_000_000  # bytes of an uploaded orders CSV
SHOWN_DEAD = 500  # dead letters listed on a page (all are counted and grouped)


class Dashboard:
    def __init__(self, gateway: Gateway, auth: AdminAuth) -> None:
        self.gateway = gateway
        self.auth = auth
        self.trusted = parse_networks(gateway.settings.server.trusted_proxies)
        self.setup_pages = SetupPages(gateway, self._render)

    def routes(self) -> list[Route]:
        guarded = self._guard
        api = DashboardAPI(self.gateway)
        pages = self.setup_pages
        return [
            Route("/dashboard/setup", guarded(pages.setup), methods=["GET"]),
            Route("/dashboard/pairing", guarded(pages.pairing), methods=["GET"]),
            Route("/dashboard/alerts", guarded(pages.alerts), methods=["GET"]),
            Route("/dashboard", guarded(self.overview), methods=["GET"]),
            Route("/dashboard/quality", guarded(self.quality), methods=["GET"]),
            Route("/dashboard/inspector", guarded(self.inspector), methods=["GET"]),
            Route("/dashboard/inspector/{id:int}", guarded(self.inspect), methods=["GET"]),
            Route("/dashboard/test-events", guarded(self.test_events), methods=["GET"]),
            Route("/dashboard/test-events/stream", guarded(self.test_stream), methods=["GET"]),
            Route("/dashboard/dead-letters", guarded(self.dead_letters), methods=["GET"]),
            Route("/dashboard/dead-letters/replay", guarded(self.replay), methods=["POST"]),
            Route("/dashboard/gaps", guarded(self.gaps), methods=["GET", "POST"]),
            Route("/dashboard/api/summary", guarded(api.summary), methods=["GET"]),
            Route("/dashboard/api/events", guarded(api.events), methods=["GET"]),
            Route("/dashboard/api/pairing", guarded(api.pairing), methods=["GET"]),
            Route("/dashboard/api/alerts", guarded(api.alerts), methods=["GET"]),
            Route("/dashboard/api/setup", guarded(api.setup), methods=["GET"]),
        ]

    def _guard(self, handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            client = client_ip(request, self.trusted) or ""
            wait = self.auth.wait(client)
            if wait:
                return Response("too many failed logins; try again later", 429,
                                headers={"Retry-After": str(math.ceil(wait))})
            if not self.auth.attempt(request, client):
                return self.auth.challenge()
            return await handler(request)

        return guarded

    def _render(self, request: Request, template: str, **context: Any) -> Response:
        testing = [d.settings for d in self.gateway.destinations if d.settings.test_event_code]
        csrf, new = self.auth.session_csrf(request)
        response = TEMPLATES.TemplateResponse(request, template, {
            "testing": testing, "demo": self.gateway.demo, "csrf": csrf,
            "windows": summary.WINDOWS, "mode": None,
            "page": template.removesuffix(".html"), **context})
        if new:
            self.auth.set_csrf_cookie(response, csrf, secure=self._over_https(request))
        return response

    async def _csrf_ok(self, request: Request) -> bool:
        """The form's CSRF token and origin (behind a trusted TLS proxy, its https one)."""
        peer = request.client.host if request.client else ""
        return await self.auth.csrf_ok(request, behind_tls_proxy=is_trusted(peer, self.trusted))

    def _over_https(self, request: Request) -> bool:
        if request.url.scheme == "https":
            return True
        peer = request.client.host if request.client else ""
        proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip()
        return proto == "https" and is_trusted(peer, self.trusted)

    @staticmethod
    def _window(request: Request, default: str = "24h") -> str:
        window = request.query_params.get("window", default)
        return window if window in summary.WINDOWS else default

    @staticmethod
    def _mode(request: Request, default: str = "live") -> str:
        mode = request.query_params.get("mode", default)
        return mode if mode in summary.MODES else default

    async def overview(self, request: Request) -> Response:
        window, mode = self._window(request), self._mode(request)
        now = time.time()
        try:
            custom = summary.custom_range(request.query_params.get("from"),
                                          request.query_params.get("to"), now)
        except ValueError as exc:
            return Response(str(exc), 400)
        since, until = custom or (now - summary.WINDOWS[window], now)
        span = until - since
        step = summary.bucket_for(span)
        # One read of each: the counters of this range and the one before (for the trend
        # column), and the request log.
        first, last = int(since // 60), int(until // 60)
        rows = await self.gateway.counters(since - span, mode)
        counters = [c for c in rows if first <= c[0] <= last]
        before: dict[tuple[str, str], int] = {}
        for minute, dest, event, name, value in rows:
            if minute < first and name == "received":
                before[(dest, event)] = before.get((dest, event), 0) + value
        logged = [r for r in await self.gateway.requests(since) if r.at <= until]
        requests = [r for r in logged if mode_includes(mode, r.test)]
        backlog = await self.gateway.backlog()
        health = figures.tag_health([d.name for d in self.gateway.destinations], counters,
                                    requests, backlog, span, step, now=until)
        figures_now = await self.gateway.summary_between(since, until, mode, counters=counters,
                                                         requests=logged)
        totals = _totals(figures_now)
        if custom:
            window = "custom"
        charts = {h.destination: (
            bar_chart([b.start for b in h.series], [b.requests - b.failed for b in h.series],
                      [b.failed for b in h.series], title=f"requests to TikTok, {h.destination}"),
            bar_chart([b.start for b in h.series], [b.events for b in h.series],
                      [0] * len(h.series), title=f"events delivered, {h.destination}"))
            for h in health}
        oldest = now - backlog.oldest_pending_at if backlog.oldest_pending_at else None
        refresh = request.query_params.get("refresh", "30")
        extras = await self.setup_pages.overview_extras()
        extras["webhook_calls"] = figures.webhook_calls(counters)
        return self._render(request, "overview.html", window=window, mode=mode, health=health,
                            **extras,
                            custom=custom,
                            charts=charts, backlog=backlog, oldest=oldest, totals=totals,
                            summary=figures_now, since=since, before=before,
                            refresh=int(refresh) if refresh in ("0", "10", "30", "60") else 30,
                            status=summary.status_line(requests, totals["pending"], now))

    async def quality(self, request: Request) -> Response:
        window, mode = self._window(request), self._mode(request)
        source = request.query_params.get("source")
        source = source if source in SOURCES else None
        now, span = time.time(), summary.WINDOWS[window]
        both = of_source(await self.gateway.counters(now - 2 * span, mode), source)
        start = int((now - span) // 60)
        quality = figures.data_quality([c for c in both if c[0] >= start])
        before = {q.event: q for q in figures.data_quality([c for c in both if c[0] < start])}
        export = request.query_params.get("format")
        if export in ("csv", "json"):
            columns = ["event", "events", *QUALITY_FIELDS,
                       *(f"{f}_invalid" for f in QUALITY_FIELDS if f in USER_FIELDS),
                       "shared_event_id", "match_quality_estimate", "band"]
            rows = [[q.event, q.received, *(round(q.share(f), 4) for f in QUALITY_FIELDS),
                     *(q.invalid(f) for f in QUALITY_FIELDS if f in USER_FIELDS),
                     round(q.shared_id_share, 4), q.match_quality, q.band] for q in quality]
            if export == "csv":
                return csv_response(columns, rows, "data-quality")
            return JSONResponse({"window": window, "mode": mode, "source": source,
                                 "events": [dict(zip(columns, r, strict=True)) for r in rows]})
        return self._render(request, "quality.html", window=window, mode=mode, quality=quality,
                            before=before, advice=figures.advice_by_key(quality),
                            fields=QUALITY_FIELDS, weights=figures.EMQ_WEIGHTS,
                            bands=figures.BANDS, source=source, sources=SOURCES)

    async def inspector(self, request: Request) -> Response:
        """Every event received (sampled or not, filtered, rejected, copies): the search."""
        q = request.query_params
        window, mode = self._window(request, "7d"), self._mode(request, "all")
        state = {"sent": "delivered"}.get(q.get("state") or "", q.get("state") or None)
        text = {k: (q.get(k) or "").strip()[:300] or None
                for k in ("q", "order_id", "event_id", "event", "reason")}
        query = EventSearch(
            order_id=text["order_id"], event_id=text["event_id"], prefix=text["q"],
            event_name=text["event"], state=state if state in SEARCH_STATES else None,
            reason=text["reason"], mode=mode, limit=200,
            code=int(q["code"]) if (q.get("code") or "").isdigit() and len(q["code"]) <= 5 else None,
            since=time.time() - summary.WINDOWS[window])
        total, records = await self.gateway.search(query)
        return self._render(request, "inspector.html", records=records, total=total, q=q,
                            window=window, mode=mode, states=SEARCH_STATES,
                            windows=summary.WINDOWS)

    async def inspect(self, request: Request) -> Response:
        record_id = request.path_params["id"]
        record = await self.gateway.record(record_id) if record_id <= MAX_RECORD_ID else None
        if record is None:
            return self._render(request, "inspect.html", record=None)
        legs = await self.gateway.legs(record.event_id, record.order_id, record.destination)
        return self._render(request, "inspect.html", record=record,
                            server_leg=next((x for x in legs if x.side == SERVER
                                             and x.event_id == record.event_id), None),
                            pixel_legs=[x for x in legs if x.side == PIXEL],
                            copies=await self.gateway.copies(record.id),
                            changes=await self.gateway.changes(record.order_id),
                            inbound=json.loads(record.inbound) if record.inbound else None,
                            sent=self.gateway.request_body(record), verdict=_verdict(record),
                            answer=record.result)

    async def test_events(self, request: Request) -> Response:
        return self._render(request, "test_events.html")

    async def test_stream(self, request: Request) -> Response:
        """Server-sent events: each test event, again whenever its delivery state changes."""
        async def stream() -> AsyncIterator[str]:
            seen: dict[int, str] = {}
            since = time.time() - 3600
            yield "retry: 1000\n\n"
            while not await request.is_disconnected():
                records = await self.gateway.find(
                    RecordQuery(test_only=True, since=since, limit=200))
                for record in reversed(records):
                    if seen.get(record.id) != record.state:
                        seen[record.id] = record.state
                        yield f"data: {json.dumps(_test_event_row(record))}\n\n"
                await asyncio.sleep(0.5)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    async def gaps(self, request: Request) -> Response:
        """The gap report for orders uploaded as a CSV (or pasted, one id a line)."""
        if request.method == "GET":  # the orders the webhooks reported in the window
            window = self._window(request, "7d")
            seen = await self.gateway.webhook_orders(time.time() - summary.WINDOWS[window],
                                                     WEBHOOK_ORDERS_SHOWN)
            report = await self.gateway.gap_report(seen) if seen else None
            if request.query_params.get("format") == "csv":
                return _gap_csv(report or gaps.GapReport())
            return self._render(request, "gaps.html", report=report, error=None,
                                window=window, from_webhooks=True)
        # Bounded before the form is parsed (a file part would be spooled to disk whole).
        length = request.headers.get("content-length", "")
        if not length.isdigit() or int(length) > MAX_ORDERS_UPLOAD + 65_536:
            return Response(f"send at most {MAX_ORDERS_UPLOAD // 1_000_000} MB of orders, "
                            "with a Content-Length", 413)
        if not await self._csrf_ok(request):
            return Response("missing or wrong CSRF token", 403)
        form = await request.form(max_files=1, max_fields=4, max_part_size=MAX_ORDERS_UPLOAD)
        upload, pasted = form.get("orders"), form.get("ids")
        text = ""
        if isinstance(upload, UploadFile):
            text = (await upload.read(MAX_ORDERS_UPLOAD + 1)).decode("utf-8", "replace")
        if not text.strip() and isinstance(pasted, str):
            text = pasted
        try:
            if len(text) > MAX_ORDERS_UPLOAD:
                raise ValueError(f"at most {MAX_ORDERS_UPLOAD // 1_000_000} MB of orders at a time")
            order_ids = gaps.order_ids_from_csv(text)
        except ValueError as exc:
            return self._render(request, "gaps.html", report=None, error=str(exc))
        report = await self.gateway.gap_report(order_ids)
        if form.get("format") == "csv":
            return _gap_csv(report)
        return self._render(request, "gaps.html", report=report, error=None,
                            from_webhooks=False)

    async def dead_letters(self, request: Request) -> Response:
        """Dead letters grouped by cause, then each, the most recent first."""
        records = await self.gateway.dead_letters()
        q = request.query_params
        return self._render(request, "dead_letters.html", records=records[:SHOWN_DEAD],
                            total=len(records), groups=_dead_groups(records),
                            replayed=q.get("replayed"), refused=q.get("refused"))

    async def replay(self, request: Request) -> Response:
        """One dead letter at once (its row names it); a group or all after a confirmation
        page that says what will be replayed."""
        if not await self._csrf_ok(request):
            return Response("missing or wrong CSRF token", 403)
        form = await request.form()
        record_id, cause = form.get("id"), form.get("cause")
        if record_id is not None:
            if not (isinstance(record_id, str) and record_id.isdigit()
                    and int(record_id) <= MAX_RECORD_ID):
                return Response("id must be a record number", 400)
            ids = [int(record_id)]
        else:
            dead = await self.gateway.dead_letters()
            chosen = [r for r in dead if cause is None or _dead_cause(r) == cause]
            if form.get("confirm") != "yes":
                return self._render(request, "replay_confirm.html", records=chosen[:SHOWN_DEAD],
                                    count=len(chosen), cause=cause)
            ids = [r.id for r in chosen]
        count, refused = await self.gateway.replay(ids)
        return RedirectResponse(f"/dashboard/dead-letters?replayed={count}&refused={refused}", 303)


def _gap_csv(report: gaps.GapReport) -> Response:
    return csv_response(("order_id", "label", "changed since"), (
        (order, label, report.changed.get(order, "")) for order, label in report.labels.items()),
        "gap-report")


def _dead_cause(record: OutboxRecord) -> str:
    result = record.result or {}
    return causes.cause(result.get("code"), result.get("message") or "", None)


def _dead_groups(records: list[OutboxRecord]) -> list[dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = {}
    for r in records:
        cause = _dead_cause(r)
        group = groups.setdefault(cause, {"cause": cause, "code": (r.result or {}).get("code"),
                                          "count": 0, "last": 0.0,
                                          "advice": causes.advice((r.result or {}).get("code"),
                                                                  None)})
        group["count"] += 1
        group["last"] = max(group["last"], r.finished_at or 0)
    return sorted(groups.values(), key=lambda g: -g["count"])


def _totals(figures_now: dict[str, Any]) -> dict[str, Any]:
    """The summary's event figures summed over destinations (rejected ones once: an event
    refused at ingest shows under every destination)."""
    totals: dict[str, Any] = {k: 0 for k in ("received", "delivered", "pending", "dead",
                                             "duplicates", "filtered")}
    rejected = 0
    for figures_of in figures_now["destinations"].values():
        events = figures_of["events"]
        for key in ("received", "delivered", "pending", "dead", "duplicates"):
            totals[key] += events[key]
        totals["filtered"] += sum(events["filtered"].values())
        rejected = sum(events["rejected"].values())
    settled = totals["delivered"] + totals["dead"]
    totals["rejected"] = rejected
    totals["delivery_rate"] = totals["delivered"] / settled if settled else None
    return totals


def _verdict(record: OutboxRecord) -> dict[str, Any] | None:
    if not record.payload:
        return None
    return lint_event(record.data, 0, time.time(), prefix="").as_dict()


def _test_event_row(record: OutboxRecord) -> dict[str, Any]:
    data = record.data if record.payload else {}
    verdict = _verdict(record) or {"errors": [], "warnings": [], "dropped": []}
    user, props = data.get("user") or {}, data.get("properties") or {}
    inbound_user = (json.loads(record.inbound).get("user") or {}) if record.inbound else {}
    not_sent = [k for k, v in inbound_user.items() if isinstance(v, str) and v.startswith("[")]
    return {"id": record.id, "not_sent": not_sent, "event": record.event_name, "event_id": record.event_id,
            "test_event_code": record.test_event_code, "destination": record.destination,
            "state": record.state, "event_time": record.event_time,
            "value": props.get("value"), "currency": props.get("currency"),
            "hashed": [k for k in ("email", "phone", "external_id") if user.get(k)],
            "plain": [k for k in ("ttclid", "ttp", "ip", "user_agent") if user.get(k)],
            "verdict": verdict, "tiktok": record.result}
