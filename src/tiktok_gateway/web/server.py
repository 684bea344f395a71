"""Run an ASGI app under uvicorn and announce its URL once the socket is bound."""

from __future__ import annotations

import asyncio
import gc
import signal
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import uvicorn
from starlette.types import ASGIApp


def bound_url(server: uvicorn.Server, host: str) -> str:
    port = server.servers[0].sockets[0].getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


async def serve(app: ASGIApp, host: str, port: int, on_start: Callable[[str], None],
                *, log_level: str = "warning", access_log: bool = False,
                limit_concurrency: int | None = None, keep_alive: float = 5.0,
                header_timeout: float | None = None,
                on_reload: Callable[[], None] | None = None,
                sock: socket.socket | None = None) -> None:
    """Serve until SIGINT/SIGTERM; `on_start(url)` runs once the port is open (port 0 works).

    `limit_concurrency` bounds the connections served at once (uvicorn answers 503 past it)
    and `keep_alive` closes idle connections, so that slow or idle sockets cannot pile up;
    `header_timeout` closes a connection whose request head is not complete in time;
    `on_reload` runs on SIGHUP, between requests (the event loop's thread); `sock`, a
    listening socket to accept from instead of binding `host:port` (`serve --workers`)."""
    http: Any = "auto"
    if header_timeout is not None:
        from .protocol import bounded_protocol

        http = bounded_protocol(header_timeout)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level,
                            access_log=access_log, lifespan="on", timeout_graceful_shutdown=30,
                            proxy_headers=False,  # trusted_proxies in our config decides
                            limit_concurrency=limit_concurrency,
                            timeout_keep_alive=max(1, round(keep_alive)), http=http)
    server = uvicorn.Server(config)

    async def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.02)
        if on_reload is not None:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_reload)
        on_start(bound_url(server, host))

    task = asyncio.create_task(announce())
    try:
        await server.serve(sockets=[sock] if sock is not None else None)
    finally:
        task.cancel()


def freeze_startup_objects() -> None:
    """Take what lives as long as the process out of the cycle collector's sight.

    The collector's older generations are walked now and then; with every module, model and
    regular expression in them, each walk cost more than the request it interrupted (a
    100-event ingest request was parsed four times slower). Frozen objects are never walked.
    The thresholds stay CPython's: raising them let delivery's reference cycles, which hold
    whole request bodies, pile up to hundreds of megabytes.
    """
    gc.freeze()


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run the server's coroutine on uvloop when it is installed (it is by default)."""
    freeze_startup_objects()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)
