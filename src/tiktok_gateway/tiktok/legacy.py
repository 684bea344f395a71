"""Legacy Events API 1.0 bodies (`/pixel/track/`, `/pixel/batch/`), read as 2.0.

The gateway only sends 2.0, but `check` and the sandbox accept 1.0 bodies for people
migrating. A 1.0 event is converted to its 2.0 equivalent, linted with the 2.0 rules,
and every finding's path is translated back to where it sits in the 1.0 body.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from ..exceptions import FieldError
from . import lint

# 2.0 path inside one event -> 1.0 path inside one event (longest prefix wins).
_PATHS_TO_LEGACY = {
    "user.phone": "context.user.phone_number",
    "user.email": "context.user.email",
    "user.external_id": "context.user.external_id",
    "user.ttp": "context.user.ttp",
    "user.ttclid": "context.ad.callback",
    "user.ip": "context.ip",
    "user.user_agent": "context.user_agent",
    "user.locale": "context.locale",
    "user": "context.user",
    "page": "context.page",
    "event_time": "timestamp",
}


def is_legacy(body: Any) -> bool:
    return isinstance(body, dict) and "pixel_code" in body


def legacy_event_to_v2(event: dict[str, Any], now: float) -> tuple[dict[str, Any], list[FieldError]]:
    """The 2.0 `data[]` item for one 1.0 event, and errors found while converting."""
    errors: list[FieldError] = []
    context = _object(event.get("context"))
    out: dict[str, Any] = {k: event[k] for k in ("event", "event_id", "properties") if k in event}
    out["event_time"] = _legacy_time(event.get("timestamp"), now, errors)
    user = dict(_object(context.get("user")))
    if "phone_number" in user:
        user["phone"] = user.pop("phone_number")
    ad = _object(context.get("ad"))
    if "callback" in ad:
        user["ttclid"] = ad["callback"]
    for key in ("ip", "user_agent", "locale"):
        if key in context:
            user[key] = context[key]
    if user:
        out["user"] = user
    if "page" in context:
        out["page"] = context["page"]
    return out, errors


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _legacy_time(value: Any, now: float, errors: list[FieldError]) -> int | Any:
    if value is None:  # TikTok uses its receive time
        return int(now)
    if not isinstance(value, str):
        errors.append(FieldError("timestamp", "Not a valid string: ISO 8601 expected"))
        return value
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError:
        errors.append(FieldError("timestamp", f"{value!r} is not an ISO 8601 time"))
        return value


def to_legacy_path(path: str, prefix: str) -> str:
    """Translate a 2.0 path relative to one event into the 1.0 body's path."""
    for new, old in sorted(_PATHS_TO_LEGACY.items(), key=lambda kv: -len(kv[0])):
        if path == new or path.startswith(new + "."):
            path = old + path[len(new):]
            break
    return f"{prefix}.{path}" if prefix else path


def lint_legacy(body: dict[str, Any], *, now: float | None = None) -> tuple[lint.LintReport, dict[str, Any]]:
    """Lint a 1.0 body; also return its 2.0 equivalent (what the sandbox stores)."""
    now = time.time() if now is None else now
    report = lint.LintReport(kind="pixel/batch" if "batch" in body else "pixel/track")
    pixel = body.get("pixel_code")
    if not isinstance(pixel, str) or not pixel:
        report.request_errors.append(FieldError("pixel_code", "required: the pixel code"))
    if "batch" in body:
        items = body["batch"] if isinstance(body["batch"], list) else []
        if not isinstance(body["batch"], list) or not items:
            report.request_errors.append(FieldError("batch", "required: a list of events"))
        prefixes = [f"batch.{i}" for i in range(len(items))]
    else:
        items, prefixes = [body], [""]
    v2_events = []
    for index, (item, prefix) in enumerate(zip(items, prefixes, strict=True)):
        verdict, v2 = _lint_one(item, index, prefix, now)
        report.events.append(verdict)
        v2_events.append(v2)
    v2_body = {"event_source": "web", "event_source_id": pixel, "data": v2_events}
    if isinstance(body.get("test_event_code"), str):
        v2_body["test_event_code"] = body["test_event_code"]
    return report, v2_body


def _lint_one(item: Any, index: int, prefix: str, now: float) -> tuple[lint.EventVerdict, Any]:
    if not isinstance(item, dict):
        verdict = lint.EventVerdict(index=index)
        verdict.errors.append(FieldError(prefix or "body", "must be a JSON object"))
        return verdict, item
    v2, errors = legacy_event_to_v2(item, now)
    verdict = lint.lint_event(v2, index, now, prefix="")
    for findings in (verdict.errors, verdict.warnings, verdict.dropped):
        findings[:] = [FieldError(to_legacy_path(f.field, prefix), f.message) for f in findings]
    verdict.errors[:0] = [FieldError(to_legacy_path(e.field, prefix), e.message) for e in errors]
    return verdict, verdict.parsed



def lint_body(body: Any, *, now: float | None = None) -> lint.LintReport:
    """Lint a 2.0 body, or a 1.0 body recognised by its `pixel_code`."""
    if is_legacy(body):
        return lint_legacy(body, now=now)[0]
    return lint.lint_request(body, now=now)
