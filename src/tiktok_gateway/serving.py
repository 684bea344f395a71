"""Run an ASGI app under uvicorn and announce its URL once the socket is bound."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Coroutine
from typing import Any

import uvicorn
from starlette.types import ASGIApp

GC_THRESHOLD = 50_000  # allocations between young-generation collections (CPython: 700)


def bound_url(server: uvicorn.Server, host: str) -> str:
    port = server.servers[0].sockets[0].getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


async def serve(app: ASGIApp, host: str, port: int, on_start: Callable[[str], None],
                *, log_level: str = "warning", access_log: bool = False) -> None:
    """Serve until SIGINT/SIGTERM; `on_start(url)` runs once the port is open (port 0 works)."""
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level,
                            access_log=access_log, lifespan="on", timeout_graceful_shutdown=30,
                            proxy_headers=False)  # trusted_proxies in our config decides
    server = uvicorn.Server(config)

    async def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.02)
        on_start(bound_url(server, host))

    task = asyncio.create_task(announce())
    try:
        await server.serve()
    finally:
        task.cancel()


def tune_garbage_collector() -> None:
    """Collect cycles less often, and never walk the objects that live as long as the process.

    Ingest allocates a dozen containers per event, so with CPython's default threshold of
    700 the collector ran several times per 100-event request and, now and then, walked
    every object in the process: it cost four times the JSON parsing it interrupted.
    Our request objects are freed by reference counting; cycles are rare and still collected.
    """
    gc.freeze()  # modules, settings and the app: moved out of the collector's sight
    gc.set_threshold(GC_THRESHOLD, 20, 20)


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run the server's coroutine on uvloop when it is installed (it is by default)."""
    tune_garbage_collector()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)
