"""`tiktok-gateway transform`: many inbound events to 2.0 request bodies, with verdicts."""

from __future__ import annotations

import time
from typing import Any

from ..exceptions import InvalidEvent
from ..ingest import split_events
from ..pipeline import Transformed, TransformOptions, build_requests, transform


def transform_batch(
    payload: Any,
    options: TransformOptions,
    *,
    pixel_id: str,
    test_event_code: str | None = None,
    partner_name: str | None = "tiktok-gateway",
    event_source: str = "web",
) -> dict[str, Any]:
    """`{"requests": [...], "rejected": [...], "warnings": [...]}` for a payload of events."""
    now = time.time()
    accepted: list[Transformed] = []
    rejected: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    for index, raw in enumerate(split_events(payload)):
        try:
            item = transform(raw, options, now=now)
        except InvalidEvent as exc:
            rejected.append({"index": index, "errors": [e.as_dict() for e in exc.errors]})
            continue
        accepted.append(item)
        warnings.extend({"index": index, **w.as_dict()} for w in item.warnings)
    requests = build_requests(accepted, pixel_id, test_event_code=test_event_code,
                              partner_name=partner_name, event_source=event_source)
    return {"requests": requests, "rejected": rejected, "warnings": warnings}
