"""TikTok's side of the wire: the 2.0 request and response, lint rules and the client.

The names below load on first use (PEP 562), so that importing `tiktok.schema` to build a
request does not import the HTTP client: `tiktok-gateway transform` starts faster for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import Delivery, TikTokClient
    from .lint import EventVerdict, LintReport, lint_event, lint_request
    from .schema import TrackResponse, build_request

_HOMES = {
    "Delivery": "client", "TikTokClient": "client",
    "EventVerdict": "lint", "LintReport": "lint", "lint_event": "lint", "lint_request": "lint",
    "TrackResponse": "schema", "build_request": "schema",
}

__all__ = [
    "Delivery",
    "EventVerdict",
    "LintReport",
    "TikTokClient",
    "TrackResponse",
    "build_request",
    "lint_event",
    "lint_request",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{home}", __name__), name)
