"""A schemathesis check of our own, loaded with SCHEMATHESIS_HOOKS: every rejection says why."""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.check
def rejections_name_fields(ctx: Any, response: Any, case: Any) -> None:
    """A 4xx answer carries its reason; each event rejected in a 2xx names its fields and why."""
    try:
        body = response.json()
    except ValueError:
        body = None
    said_why = isinstance(body, dict) and bool(body.get("error") or body.get("rejected"))
    if 400 <= response.status_code < 500 and not said_why:
        raise AssertionError(f"{response.status_code} without a reason: {response.text[:300]}")
    for rejected in (body.get("rejected") or []) if isinstance(body, dict) else []:
        errors = rejected.get("errors") or []
        if not errors or not all(e.get("field") and e.get("message") for e in errors):
            raise AssertionError(f"a rejected event without a named field and reason: {rejected}")
