"""tiktok-gateway: a self-hosted server-side tracking gateway for the TikTok Events API."""

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
