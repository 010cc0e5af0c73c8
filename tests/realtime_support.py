"""A minimal graphql-transport-ws client (the ``websockets`` library) that shows what the server
sends, close codes included; two real uvicorn servers on one database; NOTIFY bursts."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin, Subprotocol

from gql_api.db import libpq_url
from tests.server_support import RunningServer, server_env, uvicorn_server

PROTOCOL = "graphql-transport-ws"
VIEWER_EVENTS = "subscription { viewerEvents { kind sessionId ownSession reason fields } }"
USER_CHANGES = "subscription { userChanges { kind userId fields } }"


def ws_url(server: RunningServer) -> str:
    return f"ws://127.0.0.1:{server.port}/graphql"


class Closed(Exception):
    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed {code} {reason}")
        self.code = code
        self.reason = reason


class Client:
    """One socket. Every wait has a deadline; ``ping`` from the server is answered."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def receive(self, within: float) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no message within {within}s")
            try:
                raw = await asyncio.wait_for(self.ws.recv(), timeout=left)
            except ConnectionClosed as exc:
                received = exc.rcvd
                raise Closed(
                    received.code if received else None, received.reason if received else ""
                ) from None
            assert isinstance(raw, str), "graphql-transport-ws sends text frames only"
            message: dict[str, Any] = json.loads(raw)
            if message.get("type") == "ping":
                await self.send({"type": "pong"})
                continue
            return message

    async def init(self, token: str | None, within: float = 5) -> dict[str, Any]:
        payload = {} if token is None else {"authorization": f"Bearer {token}"}
        await self.send({"type": "connection_init", "payload": payload})
        return await self.receive(within)

    async def subscribe(self, op_id: str, query: str, **extra: Any) -> None:
        await self.send({"id": op_id, "type": "subscribe", "payload": {"query": query, **extra}})

    async def event(
        self, op_id: str, within: float, match: Callable[[dict[str, Any]], bool] = lambda _: True
    ) -> dict[str, Any]:
        """The next ``next`` payload's data for ``op_id`` that ``match``es."""
        deadline = time.monotonic() + within
        while True:
            message = await self.receive(max(deadline - time.monotonic(), 0.001))
            if message.get("id") != op_id:
                continue
            if message["type"] != "next":
                raise AssertionError(f"expected next, got {message}")
            data = message["payload"]["data"]
            if match(data):
                return data  # type: ignore[no-any-return]

    async def close_code(self, within: float) -> tuple[int | None, str]:
        """Read until the server closes; its close code and reason."""
        deadline = time.monotonic() + within
        while True:
            try:
                await self.receive(max(deadline - time.monotonic(), 0.001))
            except Closed as closed:
                return closed.code, closed.reason


@contextmanager
def no_op() -> Iterator[None]:
    yield


async def open_client(
    server: RunningServer, *, origin: str | None = None, max_queue: int | None = 16
) -> Client:
    ws = await connect(
        ws_url(server),
        subprotocols=[Subprotocol(PROTOCOL)],
        origin=None if origin is None else Origin(origin),
        max_queue=max_queue,
        open_timeout=10,
        close_timeout=5,
    )
    return Client(ws)


async def handshake_status(server: RunningServer, *, origin: str) -> int | None:
    """The HTTP status of a refused handshake, None when it was accepted."""
    try:
        ws = await connect(
            ws_url(server),
            subprotocols=[Subprotocol(PROTOCOL)],
            origin=Origin(origin),
            open_timeout=10,
        )
    except InvalidStatus as exc:
        return int(exc.response.status_code)
    await ws.close()
    return None


async def graphql(
    server: RunningServer, query: str, token: str | None = None, **variables: Any
) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        response = await http.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )
    body: dict[str, Any] = response.json()
    return body


@contextmanager
def servers(
    database_url: str, directory: Path, count: int = 1, **env: str
) -> Iterator[list[RunningServer]]:
    """``count`` uvicorn processes on one database, stopped (by PID) at the end."""
    with ExitStack() as stack:
        started = [
            stack.enter_context(
                uvicorn_server(server_env(database_url, **env), directory / f"server{n}.log")
            )
            for n in range(count)
        ]
        yield started


async def notify_burst(database_url: str, user_id: Any, count: int) -> None:
    """``count`` distinct profile events for ``user_id``, in one transaction (real NOTIFY, as
    the server publishes them)."""
    conn = await asyncpg.connect(libpq_url(database_url))
    try:
        await conn.execute(
            "SELECT pg_notify('gql_api_events', json_build_object("
            "'k', 'user.updated', 'u', $1::text, 'f', json_build_array('n' || i))::text) "
            "FROM generate_series(1, $2) AS i",
            str(user_id),
            count,
        )
    finally:
        await conn.close()


async def terminate_listeners(database_url: str) -> int:
    """``pg_terminate_backend`` on every realtime LISTEN connection; how many there were."""
    conn = await asyncpg.connect(libpq_url(database_url))
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'gql_api realtime listener' AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return len(rows)


async def listeners(database_url: str) -> int:
    conn = await asyncpg.connect(libpq_url(database_url))
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = 'gql_api realtime listener'"
            )
        )
    finally:
        await conn.close()


async def until_subscribed(client: Client, op_id: str, database_url: str, user_id: Any) -> None:
    """Poll until the subscription is registered (a probe event comes back), with a deadline:
    the protocol has no acknowledgement for ``subscribe``."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        await notify_burst(database_url, user_id, 1)
        try:
            await client.event(op_id, 0.3)
            return
        except TimeoutError:
            continue
    raise AssertionError("the subscription never became ready")


async def subscribed(
    client: Client, token: str, op_id: str, query: str, *, database_url: str, user_id: Any
) -> None:
    """Authenticate ``client``, subscribe ``op_id`` and wait until the subscription is live."""
    assert (await client.init(token))["type"] == "connection_ack"
    await client.subscribe(op_id, query)
    await until_subscribed(client, op_id, database_url, user_id)
