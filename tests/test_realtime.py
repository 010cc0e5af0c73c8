"""Subscriptions over WebSocket (graphql-transport-ws), fanned out across server processes by
PostgreSQL LISTEN/NOTIFY: real PostgreSQL, real uvicorn processes, real sockets."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from websockets.exceptions import ConnectionClosed

from gql_api.auth.tokens import (
    decode_access_token,
    hash_token,
    issue_access_token,
    new_opaque_token,
)
from gql_api.config import Settings
from gql_api.db import Database, libpq_url
from gql_api.realtime.events import CHANNEL, USER_UPDATED, Event, publish, user_changed
from tests.conftest import MadeUser, insert_user, session_token
from tests.realtime_support import (
    USER_CHANGES,
    VIEWER_EVENTS,
    Closed,
    graphql,
    handshake_status,
    listeners,
    notify_burst,
    open_client,
    servers,
    subscribed,
    terminate_listeners,
    until_subscribed,
)
from tests.server_support import REPO, RunningServer

# Small queues, so that a client that stops reading fills one quickly.
QUEUE = "16"
INIT_TIMEOUT = "2s"


@pytest.fixture(scope="module")
def pair(
    db: Database, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[RunningServer]]:
    """Two server processes on one database."""
    directory = tmp_path_factory.mktemp("realtime")
    with servers(
        database_url,
        directory,
        count=2,
        USER_SERVICE_REALTIME_QUEUE_SIZE=QUEUE,
        USER_SERVICE_REALTIME_INIT_TIMEOUT=INIT_TIMEOUT,
    ) as started:
        yield started


def session_of(settings: Settings, token: str) -> str:
    return str(decode_access_token(settings.auth, token).session_id)


async def test_logout_on_one_server_reaches_a_socket_on_the_other(
    pair: list[RunningServer], db: Database, settings: Settings, database_url: str
) -> None:
    first, second = pair
    user = await insert_user(db, email="two-tabs@example.com")
    other_tab = await session_token(db, settings, user)
    this_tab = await session_token(db, settings, user)
    client = await open_client(first)
    try:
        await subscribed(
            client, this_tab, "v", VIEWER_EVENTS, database_url=database_url, user_id=user.id
        )

        login = await graphql(
            second,
            "mutation($input: LoginInput!) { login(input: $input) { accessToken } }",
            input={"email": user.email, "password": user.password},
        )
        third_tab = login["data"]["login"]["accessToken"]
        created = await client.event(
            "v", 2.0, lambda d: d["viewerEvents"]["kind"] == "SESSION_CREATED"
        )
        assert created["viewerEvents"]["sessionId"] == session_of(settings, third_tab)
        assert created["viewerEvents"]["ownSession"] is False

        started = time.monotonic()
        body = await graphql(second, "mutation { logout }", other_tab)
        assert body == {"data": {"logout": True}}, body
        event = await client.event(
            "v", 1.0, lambda d: d["viewerEvents"]["kind"] == "SESSION_REVOKED"
        )
        assert time.monotonic() - started < 1.0 + 0.5  # the HTTP round trip included
        assert event["viewerEvents"] == {
            "kind": "SESSION_REVOKED",
            "sessionId": session_of(settings, other_tab),
            "ownSession": False,
            "reason": "logout",
            "fields": [],
        }

        # This tab's own session ends: the event, then 4401.
        body = await graphql(second, "mutation { logout }", this_tab)
        assert body == {"data": {"logout": True}}, body
        own = await client.event("v", 2.0, lambda d: d["viewerEvents"]["kind"] == "SESSION_REVOKED")
        assert own["viewerEvents"]["ownSession"] is True
        assert own["viewerEvents"]["sessionId"] == session_of(settings, this_tab)
        assert (await client.close_code(5))[0] == 4401
    finally:
        await client.ws.close()
    for server in pair:
        assert "Traceback" not in server.log(), server.errors()


async def test_a_socket_without_subscriptions_closes_when_an_admin_revokes_its_session(
    pair: list[RunningServer], db: Database, settings: Settings, admin_token: str
) -> None:
    first, second = pair
    user = await insert_user(db)
    token = await session_token(db, settings, user)
    client = await open_client(first)
    try:
        assert (await client.init(token))["type"] == "connection_ack"
        body = await graphql(
            second,
            "mutation($id: ID!) { revokeUserSessions(userId: $id) }",
            admin_token,
            id=str(user.id),
        )
        assert body["data"] == {"revokeUserSessions": 1}, body
        assert (await client.close_code(5))[0] == 4401
    finally:
        await client.ws.close()


async def test_an_admin_sees_user_changes_and_a_plain_user_is_refused(
    pair: list[RunningServer],
    db: Database,
    settings: Settings,
    database_url: str,
    admin: MadeUser,
    admin_token: str,
    user_token: str,
) -> None:
    first, second = pair
    watcher = await open_client(first)
    plain = await open_client(first)
    try:
        await subscribed(
            watcher, admin_token, "u", USER_CHANGES, database_url=database_url, user_id=admin.id
        )

        created = await graphql(
            second,
            "mutation($input: CreateUserInput!) { createUser(input: $input) { id } }",
            admin_token,
            input={
                "email": "new-hire@example.com",
                "password": "a long enough passphrase 42",
                "firstName": "New",
                "lastName": "Hire",
            },
        )
        new_id = created["data"]["createUser"]["id"]
        event = await watcher.event("u", 2, lambda d: d["userChanges"]["kind"] == "CREATED")
        assert event["userChanges"]["userId"] == new_id
        assert "email" in event["userChanges"]["fields"]
        assert not any("password" in name for name in event["userChanges"]["fields"])

        body = await graphql(
            second,
            "mutation($id: ID!) { updateUser(id: $id, input: {status: INACTIVE}) { id } }",
            admin_token,
            id=new_id,
        )
        assert body["data"] == {"updateUser": {"id": new_id}}, body
        event = await watcher.event("u", 2, lambda d: d["userChanges"]["kind"] == "DEACTIVATED")
        assert event["userChanges"] == {
            "kind": "DEACTIVATED",
            "userId": new_id,
            "fields": ["status"],
        }
        body = await graphql(
            second,
            "mutation($id: ID!) { deleteUser(id: $id) { deletedUserId } }",
            admin_token,
            id=new_id,
        )
        assert body["data"] == {"deleteUser": {"deletedUserId": new_id}}, body
        event = await watcher.event("u", 2, lambda d: d["userChanges"]["kind"] == "DELETED")
        assert event["userChanges"]["userId"] == new_id

        assert (await plain.init(user_token))["type"] == "connection_ack"
        await plain.subscribe("u", USER_CHANGES)
        refused = await plain.receive(5)
        assert refused["type"] in {"error", "next"}, refused
        errors = refused["payload"] if refused["type"] == "error" else refused["payload"]["errors"]
        assert [e["extensions"]["code"] for e in errors] == ["FORBIDDEN"]
    finally:
        await watcher.ws.close()
        await plain.ws.close()


async def test_a_killed_listener_connection_recovers_and_sends_resync(
    pair: list[RunningServer], db: Database, settings: Settings, database_url: str
) -> None:
    first, _second = pair
    user = await insert_user(db)
    token = await session_token(db, settings, user)
    client = await open_client(first)
    try:
        await subscribed(
            client, token, "v", VIEWER_EVENTS, database_url=database_url, user_id=user.id
        )
        assert await terminate_listeners(database_url) >= 2  # one per server process
        event = await client.event("v", 10, lambda d: d["viewerEvents"]["kind"] == "RESYNC")
        assert event["viewerEvents"]["sessionId"] is None
        # Listening again: events flow.
        await until_subscribed(client, "v", database_url, user.id)
        deadline = time.monotonic() + 10
        while await listeners(database_url) < 2:
            assert time.monotonic() < deadline, "the listeners did not come back"
            await asyncio.sleep(0.05)  # poll interval of a deadline loop, not synchronisation
    finally:
        await client.ws.close()


async def test_unauthenticated_sockets_are_closed_4401(
    pair: list[RunningServer], db: Database, settings: Settings, user: MadeUser
) -> None:
    first = pair[0]
    for token in (None, "not-a-jwt"):
        client = await open_client(first)
        try:
            with pytest.raises(Closed) as closed:
                await client.init(token)
            assert closed.value.code == 4401
        finally:
            await client.ws.close()
    # Saying nothing: closed when the init timeout (2 s here) passes, with the protocol's 4408.
    client = await open_client(first)
    try:
        started = time.monotonic()
        assert (await client.close_code(10))[0] == 4408
        assert time.monotonic() - started < 5
    finally:
        await client.ws.close()
    # Subscribing without connection_init: the protocol's 4401 too.
    client = await open_client(first)
    try:
        await client.subscribe("v", VIEWER_EVENTS)
        assert (await client.close_code(5))[0] == 4401
    finally:
        await client.ws.close()
    # A token of a revoked session.
    token = await session_token(db, settings, user)
    async with db.engine.begin() as conn:
        await conn.execute(text("UPDATE user_sessions SET revoked_at = now()"))
    client = await open_client(first)
    try:
        with pytest.raises(Closed) as closed:
            await client.init(token)
        assert closed.value.code == 4401
    finally:
        await client.ws.close()


async def test_a_client_that_stops_reading_is_closed_4429(
    pair: list[RunningServer], db: Database, settings: Settings, database_url: str
) -> None:
    first = pair[0]
    user = await insert_user(db)
    token = await session_token(db, settings, user)
    client = await open_client(first, max_queue=4)
    try:
        await subscribed(
            client, token, "v", VIEWER_EVENTS, database_url=database_url, user_id=user.id
        )
        # From here the client reads nothing while events pour in: more than the socket's
        # buffers and the subscription's queue of 16 hold.
        await notify_burst(database_url, user.id, 30_000)
        code, reason = await client.close_code(30)  # read what was sent, then the close
        assert code == 4429, (code, reason)
    finally:
        await client.ws.close()
    # The server goes on serving.
    other = await open_client(first)
    try:
        assert (await other.init(token))["type"] == "connection_ack"
    finally:
        await other.ws.close()


async def test_the_origin_is_checked_on_the_upgrade(pair: list[RunningServer]) -> None:
    first = pair[0]
    assert await handshake_status(first, origin="https://evil.example") == 403
    # Development and test allow a frontend's dev server (server.cors_origin_regex).
    assert await handshake_status(first, origin="http://localhost:5173") is None


async def test_limits_and_operation_rules_apply_over_the_socket(
    pair: list[RunningServer], user_token: str
) -> None:
    client = await open_client(pair[0])
    try:
        assert (await client.init(user_token))["type"] == "connection_ack"
        aliases = " ".join(f"a{n}: kind" for n in range(20))
        await client.subscribe("deep", f"subscription {{ viewerEvents {{ {aliases} }} }}")
        message = await client.receive(5)
        assert message["type"] == "error", message
        assert [e["extensions"]["code"] for e in message["payload"]] == ["TOO_MANY_ALIASES"]

        await client.subscribe("q", "{ me { id } }")
        message = await client.receive(5)
        assert message["type"] == "error", message
        assert message["payload"][0]["extensions"]["code"] == "OPERATION_NOT_SUPPORTED"

        await client.subscribe("bad", "subscription { viewerEvents { nope } }")
        message = await client.receive(5)
        assert message["type"] == "error", message
        assert message["payload"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"

        # One subscription per operation id: the protocol's 4409.
        await client.subscribe("v", VIEWER_EVENTS)
        await client.subscribe("v", VIEWER_EVENTS)
        assert (await client.close_code(5))[0] == 4409
    finally:
        await client.ws.close()


async def test_an_expiring_session_sends_session_expired_then_4401(
    pair: list[RunningServer], db: Database, settings: Settings
) -> None:
    user = await insert_user(db)
    async with db.engine.begin() as conn:
        session_id = (
            await conn.execute(
                text(
                    "INSERT INTO user_sessions (user_id, token_hash, expires_at) "
                    "VALUES (:uid, :hash, now() + interval '2 seconds') RETURNING id"
                ),
                {"uid": user.id, "hash": hash_token(new_opaque_token())},
            )
        ).scalar_one()
    token, _ = issue_access_token(
        settings.auth, user_id=user.id, session_id=session_id, role=user.role
    )
    client = await open_client(pair[0])
    try:
        assert (await client.init(token))["type"] == "connection_ack"
        await client.subscribe("v", VIEWER_EVENTS)
        event = await client.event(
            "v", 10, lambda d: d["viewerEvents"]["kind"] == "SESSION_EXPIRED"
        )
        assert event["viewerEvents"]["ownSession"] is True
        assert event["viewerEvents"]["sessionId"] == str(session_id)
        assert (await client.close_code(5))[0] == 4401
    finally:
        await client.ws.close()


async def test_the_python_gql_client_receives_profile_changes(
    pair: list[RunningServer], db: Database, settings: Settings, database_url: str
) -> None:
    from gql import Client as GqlClient
    from gql import gql
    from gql.transport.websockets import WebsocketsTransport

    first, second = pair
    user = await insert_user(db)
    token = await session_token(db, settings, user)
    transport = WebsocketsTransport(
        url=f"ws://127.0.0.1:{first.port}/graphql",
        init_payload={"authorization": f"Bearer {token}"},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    received: list[dict[str, Any]] = []

    async def consume() -> None:
        async with GqlClient(transport=transport) as session:
            async for result in session.subscribe(gql(VIEWER_EVENTS)):
                received.append(result["viewerEvents"])
                if result["viewerEvents"]["kind"] == "PROFILE_CHANGED" and (
                    "first_name" in result["viewerEvents"]["fields"]
                ):
                    return

    task = asyncio.create_task(consume())
    try:
        deadline = time.monotonic() + 15
        # Until the subscription is live, each probe may be missed: send one per poll.
        while not received:
            if task.done():
                task.result()  # raises the client's failure
            assert time.monotonic() < deadline, "no event reached the gql client"
            await notify_burst(database_url, user.id, 1)
            await asyncio.wait([task], timeout=0.3)
        body = await graphql(
            second, 'mutation { updateMe(input: {firstName: "Renamed"}) { firstName } }', token
        )
        assert body["data"] == {"updateMe": {"firstName": "Renamed"}}, body
        await asyncio.wait_for(task, timeout=5)
    finally:
        task.cancel()
    assert received[-1]["kind"] == "PROFILE_CHANGED"


async def test_disabled_subscriptions_have_no_route_and_idle_sockets_close(
    db: Database, settings: Settings, database_url: str, tmp_path: Path, user_token: str
) -> None:
    before = await listeners(database_url)
    with servers(
        database_url,
        tmp_path,
        USER_SERVICE_REALTIME_ENABLED="false",
        USER_SERVICE_AUTH_SESSION_CACHE_TTL="0",
    ) as (server,):
        assert await handshake_status(server, origin=server.url) == 403
        # No LISTEN connection of its own (neither subscriptions nor the session cache need
        # one): the count is the pair's (module fixture), if any.
        assert await listeners(database_url) == before
    with servers(
        database_url,
        tmp_path,
        USER_SERVICE_REALTIME_PING_INTERVAL="200ms",
        USER_SERVICE_REALTIME_IDLE_TIMEOUT="1s",
    ) as (server,):
        client = await open_client(server)
        try:
            assert (await client.init(user_token))["type"] == "connection_ack"
            # Read without answering the server's pings: closed as idle.
            deadline = time.monotonic() + 10
            code = None
            while code is None:
                assert time.monotonic() < deadline, "the idle socket stayed open"
                try:
                    await asyncio.wait_for(client.ws.recv(), timeout=1)
                except TimeoutError:
                    continue
                except ConnectionClosed as exc:
                    code = exc.rcvd.code if exc.rcvd else -1
            assert code == 4408
        finally:
            await client.ws.close()


CLIENTS_DIR = REPO / ".ci" / "realtime"


def _install_node_clients() -> bool:
    """graphql-ws and Apollo Client from npm (pinned in .ci/realtime/package.json), installed on
    first use like the HTTP audit's graphql-http."""
    marker = CLIENTS_DIR / "node_modules" / "@apollo" / "client"
    npm = shutil.which("npm")
    if not marker.is_dir() and npm is not None:
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--silent"],
            cwd=CLIENTS_DIR,
            capture_output=True,
            timeout=300,
            check=False,
        )
    return marker.is_dir()


async def test_the_npm_graphql_ws_client_and_apollo_work_unchanged(
    pair: list[RunningServer], db: Database, settings: Settings, database_url: str
) -> None:
    node = shutil.which("node")
    installed = _install_node_clients()
    if node is None or not installed:
        reason = "node is not installed" if node is None else "npm install --prefix .ci/realtime"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Node realtime clients: {reason}")
        pytest.skip(reason)
    first, second = pair
    plain_user = await insert_user(db)
    apollo_user = await insert_user(db)
    plain_token = await session_token(db, settings, plain_user)
    apollo_token = await session_token(db, settings, apollo_user)
    process = await asyncio.create_subprocess_exec(
        node,
        str(CLIENTS_DIR / "clients.mjs"),
        f"ws://127.0.0.1:{first.port}/graphql",
        plain_token,
        apollo_token,
        cwd=CLIENTS_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    stdout = process.stdout
    assert stdout is not None
    lines: list[dict[str, Any]] = []

    async def read_until(done: Callable[[], bool], within: float, poke: Any = None) -> None:
        deadline = time.monotonic() + within
        while not done():
            left = deadline - time.monotonic()
            assert left > 0, f"node clients: {lines}"
            if poke is not None:
                await poke()
            try:
                raw = await asyncio.wait_for(stdout.readline(), timeout=min(left, 0.3))
            except TimeoutError:
                continue
            assert raw, f"node exited: {lines}"
            lines.append(json.loads(raw))

    def events(client: str) -> list[dict[str, Any]]:
        return [
            line["result"]["data"]["viewerEvents"]
            for line in lines
            if line.get("client") == client and "result" in line
        ]

    async def probe() -> None:
        await notify_burst(database_url, plain_user.id, 1)
        await notify_burst(database_url, apollo_user.id, 1)

    try:
        await read_until(lambda: bool(events("graphql-ws") and events("apollo")), 30, probe)
        for token in (plain_token, apollo_token):
            assert (await graphql(second, "mutation { logout }", token))["data"] == {"logout": True}

        def ended(client: str) -> bool:
            return any(
                e["kind"] == "SESSION_REVOKED" and e["ownSession"] for e in events(client)
            ) and any(line.get("client") == client and "closed" in line for line in lines)

        await read_until(lambda: ended("graphql-ws") and ended("apollo"), 15)
        closes = {line["client"]: line["closed"] for line in lines if "closed" in line}
        assert closes == {"graphql-ws": 4401, "apollo": 4401}, lines
    finally:
        if process.returncode is None:
            process.kill()  # by its own handle (PID), never by name
        await process.wait()


async def test_an_event_is_published_with_its_transaction_only(
    db: Database, database_url: str
) -> None:
    """NOTIFY inside the change's transaction: nothing for a rollback, the event at commit."""
    received: asyncio.Queue[str] = asyncio.Queue()
    conn = await asyncpg.connect(libpq_url(database_url))
    try:
        await conn.add_listener(CHANNEL, lambda *args: received.put_nowait(args[-1]))
        rolled_back, committed = uuid.uuid4(), uuid.uuid4()
        with pytest.raises(RuntimeError):
            async with db.transaction() as session:
                await publish(session, user_changed(USER_UPDATED, rolled_back, ["first_name"]))
                raise RuntimeError("the change fails after publishing")
        async with db.transaction() as session:
            await publish(session, user_changed(USER_UPDATED, committed, ["first_name"]))
        payload = await asyncio.wait_for(received.get(), timeout=5)
        assert Event.from_payload(payload) == Event(
            USER_UPDATED, user_id=committed, fields=("first_name",)
        )
        assert received.empty()  # the rolled-back one never came (it would have come first)
        assert len(payload.encode()) < 8000
    finally:
        await conn.close()


async def test_a_demoted_admin_stops_watching_and_a_deactivated_user_is_closed(
    pair: list[RunningServer], db: Database, settings: Settings, database_url: str
) -> None:
    first, second = pair
    boss = await insert_user(db, role="admin")
    demoted = await insert_user(db, role="admin")
    plain = await insert_user(db)
    boss_token = await session_token(db, settings, boss)
    watcher = await open_client(first)
    member = await open_client(first)
    try:
        assert (await watcher.init(await session_token(db, settings, demoted)))[
            "type"
        ] == "connection_ack"
        await watcher.subscribe("u", USER_CHANGES)
        await until_subscribed(watcher, "u", database_url, demoted.id)
        assert (await member.init(await session_token(db, settings, plain)))[
            "type"
        ] == "connection_ack"

        body = await graphql(
            second,
            "mutation($id: ID!) { updateUser(id: $id, input: {role: USER}) { role } }",
            boss_token,
            id=str(demoted.id),
        )
        assert body["data"] == {"updateUser": {"role": "USER"}}, body
        assert (await watcher.close_code(5))[0] == 4403

        body = await graphql(
            second,
            "mutation($id: ID!) { updateUser(id: $id, input: {status: INACTIVE}) { status } }",
            boss_token,
            id=str(plain.id),
        )
        assert body["data"] == {"updateUser": {"status": "INACTIVE"}}, body
        assert (await member.close_code(5))[0] == 4401
    finally:
        await watcher.ws.close()
        await member.ws.close()
