"""The dashboard's JSON (and CSV) API: the headline figures and event search.

Behind the admin login like every dashboard route. Its shape is relied on by other tools:
`/dashboard/api/summary`, `/dashboard/api/events`, `/dashboard/api/pairing`, `/setup` and
`/alerts` as documented in docs/http-api.md.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import checklist, summary
from ..gateway import Gateway
from ..pairing import WINDOWS
from ..search import MAX_LIMIT, STATES, EventSearch

ALERT_HISTORY = 30 * 86400  # resolved incidents listed for this long
MAX_PARAMETER = 300  # characters of any search parameter
CSV_COLUMNS = ("received_at", "destination", "event", "event_id", "order_id", "state", "reason",
               "test", "source", "tiktok_code", "tiktok_message", "tiktok_request_id")


class BadParameter(ValueError):
    pass


class DashboardAPI:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def summary(self, request: Request) -> Response:
        try:
            window = _choice(request, "window", summary.WINDOWS, "24h")
            mode = _choice(request, "mode", summary.MODES, "live")
        except BadParameter as exc:
            return JSONResponse({"error": str(exc)}, 400)
        return JSONResponse(await self.gateway.summary(window, mode))

    async def pairing(self, request: Request) -> Response:
        try:
            window = _choice(request, "window", WINDOWS, "7d")
            mode = _choice(request, "mode", summary.MODES, "all")
            event = _text(request, "event")
        except BadParameter as exc:
            return JSONResponse({"error": str(exc)}, 400)
        end = time.time()
        found = await self.gateway.pairing(end - WINDOWS[window], end, event=event, mode=mode)
        answer = found.as_dict()
        if request.query_params.get("breakdown") in ("1", "true"):
            answer["server_only_by"] = {name: dict(found.by(column)) for column, name in
                                        enumerate(("cause", "browser", "os", "load"))}
        return JSONResponse(answer)

    async def setup(self, request: Request) -> Response:
        return JSONResponse(checklist.as_json(await self.gateway.setup_steps()))

    async def alerts(self, request: Request) -> Response:
        found = await self.gateway.alert_list(time.time() - ALERT_HISTORY)
        return JSONResponse({"alerts": [
            {"rule": a.rule, "destination": a.destination, "state": a.state,
             "since": int(a.since), "message": a.message} for a in found]})

    async def events(self, request: Request) -> Response:
        try:
            query = _event_search(request)
            wants_csv = _choice(request, "format", ("json", "csv"), "json") == "csv"
        except BadParameter as exc:
            return JSONResponse({"error": str(exc)}, 400)
        total, events = await self.gateway.search(query)
        if wants_csv:
            return Response(_csv(events), media_type="text/csv; charset=utf-8", headers={
                "Content-Disposition": 'attachment; filename="events.csv"'})
        return JSONResponse({"total": total, "events": events})


def _event_search(request: Request) -> EventSearch:
    text = {name: _text(request, name) for name in
            ("order_id", "event_id", "q", "reason", "destination")}
    state = _text(request, "state")
    if state is not None and state not in STATES:
        raise BadParameter(f"state must be one of {', '.join(STATES)}")
    code = _number(request, "code", upper=99_999)
    return EventSearch(order_id=text["order_id"], event_id=text["event_id"], prefix=text["q"],
                       state=state, reason=text["reason"], destination=text["destination"],
                       event_name=_text(request, "event"),
                       code=None if code is None else int(code),
                       mode=_choice(request, "mode", summary.MODES, "all"),
                       since=_number(request, "since"),
                       limit=int(_number(request, "limit", 100, upper=MAX_LIMIT)))


def _text(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if value is None or not value.strip():
        return None
    if len(value) > MAX_PARAMETER or "\x00" in value:
        raise BadParameter(f"{name} must be at most {MAX_PARAMETER} characters of text")
    return value.strip()


def _choice(request: Request, name: str, allowed: Any, default: str) -> str:
    value = request.query_params.get(name) or default
    if value not in allowed:
        raise BadParameter(f"{name} must be one of {', '.join(allowed)}")
    return value


def _number(request: Request, name: str, default: float | None = None, *,
            upper: float = 1e12) -> Any:
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise BadParameter(f"{name} must be a number") from None
    if not 0 <= number <= upper:
        raise BadParameter(f"{name} must be between 0 and {upper:g}")
    return number


def _csv(events: list[dict[str, Any]]) -> str:
    return csv_text(CSV_COLUMNS, ([
        e["received_at"], e["destination"], e["event"], e["event_id"], e["order_id"],
        e["state"], e["reason"], e["test"], e["source"], e["tiktok"]["code"],
        e["tiktok"]["message"], e["tiktok"]["request_id"]] for e in events))


def csv_text(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A table as CSV, safe to open in a spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    writer.writerows([_cell(v) for v in row] for row in rows)
    return out.getvalue()


def csv_response(columns: Sequence[str], rows: Iterable[Sequence[Any]], name: str) -> Response:
    return Response(csv_text(columns, rows), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


def _cell(value: Any) -> Any:
    """A value as a spreadsheet will not run it: a leading =, +, - or @ is a formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value
