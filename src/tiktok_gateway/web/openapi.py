"""The OpenAPI document for the HTTP API, built from the pydantic models it accepts."""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..events import Event
from .pixel import PixelBeacon

ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
FIELD_ERROR = {"type": "object", "properties": {"field": {"type": "string"},
                                                "message": {"type": "string"}}}
INGEST_RESULT = {
    "type": "object",
    "properties": {
        "accepted": {"type": "integer", "description": "valid events (stored, filtered or duplicate)"},
        "queued": {"type": "integer", "description": "outbox records stored for delivery"},
        "duplicates": {"type": "integer"},
        "filtered": {"type": "object", "additionalProperties": {"type": "integer"}},
        "rejected": {"type": "array", "items": {"type": "object", "properties": {
            "index": {"type": "integer"},
            "errors": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"}}}}},
        "warnings": {"type": "array", "items": {"type": "object", "properties": {
            "index": {"type": "integer"}, "field": {"type": "string"},
            "message": {"type": "string"}}}},
    },
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json({"$ref": "#/components/schemas/Error"}, description)


def openapi_document() -> dict[str, Any]:
    schema = Event.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.pop("$defs", {})
    beacon = PixelBeacon.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(beacon.pop("$defs", {}))
    components.update(Event=schema, Error=ERROR, FieldError=FIELD_ERROR,
                      IngestResult=INGEST_RESULT, PixelBeacon=beacon)
    batch = {"type": "object", "required": ["events"], "properties": {"events": {
        "type": "array", "maxItems": 1000, "items": {"$ref": "#/components/schemas/Event"}}}}
    ingest = {
        "summary": "Send one event or a batch of up to 1,000",
        "parameters": [{"name": "X-Test-Event-Code", "in": "header", "required": False,
                        "schema": {"type": "string"}}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
            {"$ref": "#/components/schemas/Event"}, batch]}}}},
        "responses": {
            "202": _json({"$ref": "#/components/schemas/IngestResult"},
                         "Accepted: the events are durably stored"),
            "400": _error("Malformed JSON"), "401": _error("Missing or unknown key"),
            "403": _error("Origin not allowed for a browser key"),
            "413": _error("Body or batch too large"),
            "422": _json({"$ref": "#/components/schemas/IngestResult"},
                         "Every event was rejected; each names its fields"),
            "429": _error("Too many requests from this client"),
            "503": _error("Outbox full or storage unavailable; retry after Retry-After"),
        },
        "security": [{"bearer": []}],
    }
    status = {"summary": "Where an event is and what TikTok answered",
              "parameters": [{"name": "event_id", "in": "query", "required": False,
                              "schema": {"type": "string"}},
                             {"name": "order_id", "in": "query", "required": False,
                              "schema": {"type": "string"}}],
              "responses": {"200": _json({"type": "object"}, "Deliveries of the event"),
                            "400": _error("neither event_id nor order_id, or one too long"),
                            "401": _error("A server key is required")},
              "security": [{"bearer": []}]}
    pixel = {"summary": "What the page's TikTok pixel did with its events (from /tt.js)",
             "requestBody": {"required": True, "content": {"application/json": {
                 "schema": {"$ref": "#/components/schemas/PixelBeacon"}}}},
             "responses": {"202": _json({"type": "object"}, "Recorded (evidence for pairing)"),
                           "400": _json({"type": "object"}, "Malformed; each field at fault"),
                           "401": _error("Missing or unknown key"),
                           "403": _error("Origin not allowed for a browser key"),
                           "413": _error("Body too large"),
                           "429": _error("Too many requests from this client")},
             "security": [{"bearer": []}]}
    simple = {"get": {"responses": {"200": _json({"type": "object"}, "OK"),
                                    "503": _json({"type": "object"}, "Not ready")}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "tiktok-gateway", "version": __version__,
                 "description": "Server-side tracking gateway for the TikTok Events API"},
        "paths": {"/v1/events": {"post": ingest}, "/v1/events/status": {"get": status},
                  "/v1/pixel": {"post": pixel},
                  "/healthz": simple, "/readyz": simple},
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
