"""TikTok's side of the wire: the 2.0 request and response, lint rules and the client."""

from .client import Delivery, TikTokClient
from .lint import EventVerdict, LintReport, lint_event, lint_request
from .schema import TrackResponse, build_request

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
