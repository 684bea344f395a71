"""tiktok-gateway: a self-hosted server-side tracking gateway for the TikTok Events API.

The public names below load on first use (PEP 562): `import tiktok_gateway.pipeline` (what
`tiktok-gateway transform` needs) does not import the HTTP client or the lint rules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .events import Event, parse_event
    from .exceptions import (
        APIError,
        ConfigError,
        DeliveryError,
        DropEvent,
        FieldError,
        GatewayError,
        InvalidEvent,
        OutboxError,
        RateLimited,
        RejectedRequest,
        TransportError,
    )
    from .identity import hash_email, hash_external_id, hash_phone
    from .mapping import NameMapping
    from .pipeline import Route, Transformed, TransformOptions, build_requests, transform
    from .tiktok.client import Delivery, TikTokClient
    from .tiktok.lint import LintReport, lint_request

__version__ = "0.1.0"

_HOMES = {
    "Event": "events", "parse_event": "events",
    "APIError": "exceptions", "ConfigError": "exceptions", "DeliveryError": "exceptions",
    "DropEvent": "exceptions", "FieldError": "exceptions", "GatewayError": "exceptions",
    "InvalidEvent": "exceptions", "OutboxError": "exceptions", "RateLimited": "exceptions",
    "RejectedRequest": "exceptions", "TransportError": "exceptions",
    "hash_email": "identity", "hash_external_id": "identity", "hash_phone": "identity",
    "NameMapping": "mapping",
    "Route": "pipeline", "Transformed": "pipeline", "TransformOptions": "pipeline",
    "build_requests": "pipeline", "transform": "pipeline",
    "Delivery": "tiktok.client", "TikTokClient": "tiktok.client",
    "LintReport": "tiktok.lint", "lint_request": "tiktok.lint",
}

__all__ = [
    "APIError",
    "ConfigError",
    "Delivery",
    "DeliveryError",
    "DropEvent",
    "Event",
    "FieldError",
    "GatewayError",
    "InvalidEvent",
    "LintReport",
    "NameMapping",
    "OutboxError",
    "RateLimited",
    "RejectedRequest",
    "Route",
    "TikTokClient",
    "TransformOptions",
    "Transformed",
    "TransportError",
    "build_requests",
    "hash_email",
    "hash_external_id",
    "hash_phone",
    "lint_request",
    "parse_event",
    "transform",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{home}", __name__), name)
