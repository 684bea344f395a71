"""Helpers for our tests and for users' tests: a sandbox on a real port, sample events."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import uvicorn
from starlette.types import ASGIApp

from .sandbox import Sandbox, create_sandbox
from .web.server import bound_url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve_in_thread(app: ASGIApp, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve `app` on a free loopback port in a background thread; yield its base URL."""
    config = uvicorn.Config(app, host=host, port=0, log_level="warning", lifespan="on",
                            proxy_headers=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    try:
        yield bound_url(server, host)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def running_sandbox(tokens: dict[str, set[str]] | None = None, *, strict: bool = False
                    ) -> Iterator[tuple[str, Sandbox]]:
    """A sandbox on a real loopback port: yields (base_url, sandbox)."""
    app = create_sandbox(tokens, strict=strict)
    with serve_in_thread(app) as url:
        yield url, app.state.sandbox


def sample_event(**overrides: Any) -> dict[str, Any]:
    """A realistic inbound purchase; keyword arguments replace top-level keys."""
    event: dict[str, Any] = {
        "event": "purchase",
        "event_time": int(time.time()) - 60,
        "user": {
            "email": " Alice.Shopper@Example.com ",
            "phone": "+1 (213) 373-4253",
            "external_id": "customer-1001",
            "ip": "13.57.97.131",
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0 Safari/537.36",
            "ttp": "2F7h37YkS1j57AYSKTI7IHhJPYH",
        },
        "properties": {
            "order_id": "100045",
            "value": 46,
            "currency": "USD",
            "items": [{"item_id": "1077218", "item_name": "socks", "price": 8, "quantity": 2},
                      {"item_id": "1197218", "item_name": "dress", "price": 30, "quantity": 1}],
        },
        "page": {"url": "https://shop.example.com/checkout/thanks"},
    }
    event.update(overrides)
    return event


def with_database(dsn: str, name: str) -> str:
    """The URL of database `name` on the PostgreSQL server of `dsn`."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def run_sql(dsn: str, *statements: str) -> None:
    """Run statements outside a transaction (CREATE and DROP DATABASE need it)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        for statement in statements:
            conn.execute(statement)


@contextlib.contextmanager
def fresh_database(dsn: str, name: str) -> Iterator[str]:
    """An empty database `name` on the server of `dsn`, made anew and dropped after; yields
    its URL. Needs the `postgres` extra."""
    drop = f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    run_sql(dsn, drop, f"CREATE DATABASE {name}")
    try:
        yield with_database(dsn, name)
    finally:
        run_sql(dsn, drop)
