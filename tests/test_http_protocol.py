"""A response leaves in one write (gql_api.web.http_protocol), through a real uvicorn.

The server runs in this process on a socket of its own, with the protocol under test wrapped so
that every write reaching the connection's transport is recorded; the client is a plain TCP
socket speaking HTTP/1.1.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gql_api.web.http_protocol import CoalescingHttpToolsProtocol

TIMEOUT = 30


class RecordedTransport:
    """The connection's transport, recording what is written to it."""

    def __init__(self, transport: asyncio.Transport, writes: list[bytes]) -> None:
        self.transport = transport
        self.writes = writes

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


def recorded(protocol: type[HttpToolsProtocol], writes: list[bytes]) -> type[HttpToolsProtocol]:
    class Recorded(protocol):  # type: ignore[valid-type, misc]
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(RecordedTransport(transport, writes))

    return Recorded


@asynccontextmanager
async def serving(app: Any, protocol: type[HttpToolsProtocol]) -> AsyncIterator[int]:
    """``app`` served by uvicorn with ``protocol`` on a loopback port (its lifespan is the
    caller's); the port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()  # connections wait in the backlog until the server accepts them
    config = uvicorn.Config(app, http=protocol, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, TIMEOUT)
        sock.close()


async def read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One response with a Content-Length: its head and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head, await reader.readexactly(length)


def graphql_request(query: str, *, close: bool = False) -> bytes:
    body = orjson.dumps({"query": query})
    connection = b"connection: close\r\n" if close else b""
    return (
        b"POST /graphql HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        + connection
        + b"content-length: %d\r\n\r\n" % len(body)
        + body
    )


async def two_requests_and_a_last(app: Any, protocol: type[HttpToolsProtocol]) -> list[bytes]:
    """Two GraphQL requests on one keep-alive connection, then one asking to close it; what
    the server wrote."""
    writes: list[bytes] = []
    async with serving(app, recorded(protocol, writes)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for n in range(2):
                writer.write(graphql_request(f"{{ n{n}: __typename }}"))
                head, body = await read_response(reader)
                assert head.startswith(b"HTTP/1.1 200"), head
                assert orjson.loads(body) == {"data": {f"n{n}": "Query"}}
            writer.write(graphql_request("{ last: __typename }", close=True))
            rest = await reader.read()  # to the end: the server closes after this response
            assert rest.startswith(b"HTTP/1.1 200"), rest
            assert rest.endswith(b'{"data":{"last":"Query"}}'), rest
        finally:
            writer.close()
    return writes


async def test_each_response_leaves_in_one_write(app: Any) -> None:
    writes = await asyncio.wait_for(
        two_requests_and_a_last(app, CoalescingHttpToolsProtocol), TIMEOUT
    )
    assert len(writes) == 3, writes
    for n, write in zip(("n0", "n1", "last"), writes, strict=True):
        assert write.startswith(b"HTTP/1.1 200") and write.endswith(b'"Query"}}'), write
        assert n.encode() in write


async def test_uvicorn_alone_writes_the_head_and_the_body_apart(app: Any) -> None:
    """What the protocol is for: should uvicorn start writing a response at once, this fails
    and the protocol can go."""
    writes = await asyncio.wait_for(two_requests_and_a_last(app, HttpToolsProtocol), TIMEOUT)
    assert len(writes) == 6, writes
    assert [w.startswith(b"HTTP/1.1 200") for w in writes] == [True, False] * 3


async def streamed(scope: Any, receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    """A response written over several loop turns (as a streamed one is)."""
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"first,", "more_body": True})
    await asyncio.sleep(0)  # another loop turn: what is held goes out before it
    await send({"type": "http.response.body", "body": b"second", "more_body": False})


@pytest.mark.parametrize("protocol", [CoalescingHttpToolsProtocol, HttpToolsProtocol])
async def test_a_streamed_response_leaves_at_every_turn_in_order(
    protocol: type[HttpToolsProtocol],
) -> None:
    writes: list[bytes] = []

    async def exchange() -> bytes:
        async with serving(streamed, recorded(protocol, writes)) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
            try:
                return await reader.read()
            finally:
                writer.close()

    answer = await asyncio.wait_for(exchange(), TIMEOUT)
    assert answer.startswith(b"HTTP/1.1 200")
    assert answer.endswith(b"6\r\nfirst,\r\n6\r\nsecond\r\n0\r\n\r\n"), answer
    # The head and the first chunk together, then the rest; uvicorn alone: one write each.
    assert len(writes) == (2 if protocol is CoalescingHttpToolsProtocol else 3), writes
