"""uvicorn's HTTP protocol with a deadline for the request line and headers.

uvicorn starts no timer on a new connection, and every byte received cancels its keep-alive
timer, so a client that sends its headers a byte at a time (slowloris) holds a connection for
ever; enough of them and nobody else is served. Here each request's head must be complete
within `HEADER_TIMEOUT` seconds of the connection, or of the previous response, else the
connection is closed. The body has its own deadline where it is read (`web/ingest.py`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_TIMEOUT = 10.0


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that closes connections whose request head is too slow."""

    header_timeout = HEADER_TIMEOUT

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_deadline: asyncio.TimerHandle | None = None
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this keep-alive connection has its own deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._head_deadline = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        deadline: Any = getattr(self, "_head_deadline", None)
        if deadline is not None:
            deadline.cancel()
            self._head_deadline = None

    def _too_slow(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def bounded_protocol(header_timeout: float) -> type[BoundedHttpToolsProtocol]:
    """The protocol class with a deadline of `header_timeout` seconds."""
    return type("BoundedHttpToolsProtocol", (BoundedHttpToolsProtocol,),
                {"header_timeout": header_timeout})
