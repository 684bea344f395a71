"""create_app(): every route, and one lifespan that starts and drains the delivery workers."""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import AsyncIterator

import httpx
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from .. import __version__
from ..config import Settings, resolve_secret
from ..exceptions import ConfigError
from ..gateway import Gateway
from .admin import AdminAuth
from .auth import KeyRing
from .dashboard import Dashboard
from .health import EventStatus, Readiness, healthz
from .ingest import Ingest
from .openapi import openapi_document
from .pixel import PixelReports
from .reload import Reloader
from .sources import Sources

SANDBOX_MOUNT = "/tiktok-sandbox"


def create_app(settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None,
               gateway: Gateway | None = None, demo: bool = False) -> Starlette:
    """The gateway's ASGI app. `transport` lets tests point delivery at an in-process sandbox;
    `demo` runs against the built-in sandbox whatever tokens are configured."""
    gateway = gateway or Gateway.from_settings(settings, transport=transport, demo=demo)
    admin = AdminAuth(settings.admin)
    keys = KeyRing(settings.keys)
    document = openapi_document()

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    async def index(request: Request) -> Response:
        if "text/html" in request.headers.get("accept", ""):
            return RedirectResponse("/dashboard", 303)  # a browser: the dashboard
        return JSONResponse({"service": "tiktok-gateway", "version": __version__,
                             "demo": gateway.demo, "ingest": "/v1/events",
                             "dashboard": "/dashboard", "metrics": "/metrics",
                             "openapi": "/openapi.json"})

    metrics_token = resolve_secret(settings.server.metrics_token) if settings.server.metrics_token else None
    if settings.server.metrics_token and metrics_token is None:
        raise ConfigError("server.metrics_token names a variable or file that is not set")

    async def metrics(request: Request) -> Response:
        if metrics_token is not None and not hmac.compare_digest(
                request.headers.get("authorization", "").encode(),
                f"Bearer {metrics_token.get_secret_value()}".encode()):
            return JSONResponse({"error": "metrics need Authorization: Bearer <metrics_token>"},
                                401, headers={"WWW-Authenticate": "Bearer"})
        return Response(await gateway.metrics(), media_type=CONTENT_TYPE_LATEST)

    ingest = Ingest(gateway, keys)
    sources = Sources(gateway, keys, settings.webhooks)
    routes: list[BaseRoute] = [
        Route("/v1/events", ingest.endpoint, methods=["POST", "OPTIONS"]),
        Route("/v1/pixel", PixelReports(gateway, ingest).endpoint, methods=["POST", "OPTIONS"]),
        Route("/v1/events/status", EventStatus(gateway, keys).endpoint, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", Readiness(gateway, admin).endpoint, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/", index, methods=["GET"]),
        *Dashboard(gateway, admin).routes(),
        *sources.routes(),
    ]
    if gateway.sandbox_app is not None:
        # Demo events and the sandbox's fault switches are the admin's, not the internet's.
        routes.append(Mount(SANDBOX_MOUNT, app=admin.guard_asgi(gateway.sandbox_app)))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: http_error})
    app.state.gateway = gateway
    # SIGHUP (see `serve`): keys, tokens, webhook secrets and the login, from the file again.
    app.state.reload = Reloader(settings, gateway, keys, admin, sources).reload
    return app


async def http_error(request: Request, exc: Exception) -> Response:
    """Routing errors (404, 405) as JSON with the reason, like every other answer of the API."""
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, exc.status_code, headers=exc.headers)
