"""uvicorn's httptools protocol, sending what one loop turn writes to a connection as one write.

uvicorn writes a response's status line and headers when the app sends ``http.response.start``
and its body when the app sends ``http.response.body``: two ``write`` calls, which uvloop turns
into two ``send`` system calls, two TCP segments (Nagle is off) and two wake-ups of the client.
On this machine's 2-core VM a wake-up of another process is most of what a ``send`` costs: in
process (no HTTP), a third of a page request's CPU was in the ``send`` of its 3 statements.
Sent as one write, the benchmark's page (Q2) took 5-10% less of the worker's CPU per request
and served 6-15% more requests per second, a ``me`` (Q1) 6-9% less CPU and 8-11% more requests
(medians of 8-10 alternating rounds; ``python -m bench.response_writes``, bench/RESULTS.md).
aiohttp does the same (aio-libs/aiohttp#10991); uvicorn has no option for it.

A connection's transport is wrapped: a write is held, and what else is written in the same
loop turn joins it; the whole goes out in one write at the end of the turn (``call_soon``), or
before the transport closes. Order is kept; a streamed response still leaves at every turn.

``gql-api serve`` runs uvicorn with this protocol (``--http`` :data:`PROTOCOL` when starting
uvicorn by hand).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

PROTOCOL = "gql_api.web.http_protocol:CoalescingHttpToolsProtocol"


class OneWritePerTurn:
    """A transport whose writes of one loop turn leave as one (see the module's text)."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes | bytearray | memoryview] | None = None

    @property
    def wrapped(self) -> asyncio.Transport:
        return self._transport

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if self._held is None:
            self._held = [data]
            self._loop.call_soon(self.flush)
        else:
            self._held.append(data)

    def writelines(self, chunks: Any) -> None:
        for data in chunks:
            self.write(data)

    def flush(self) -> None:
        """Send what is held (nothing when the connection is already closing)."""
        held, self._held = self._held, None
        if not held or self._transport.is_closing():
            return
        self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def get_write_buffer_size(self) -> int:
        held = sum(len(data) for data in self._held) if self._held else 0
        return held + self._transport.get_write_buffer_size()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()  # a response written just before it (Connection: close) still leaves
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        # Everything else (extra info, reading, flow control, is_closing) is the transport's.
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # uvicorn keeps its flow control on the transport itself; only writes are held.
        self.transport = OneWritePerTurn(transport, self.loop)  # type: ignore[assignment]

    def handle_websocket_upgrade(self) -> None:
        # A websocket protocol takes the connection over with its own framing and writes: it
        # gets the connection's own transport.
        if isinstance(self.transport, OneWritePerTurn):
            self.transport.flush()
            self.transport = self.transport.wrapped
        super().handle_websocket_upgrade()
