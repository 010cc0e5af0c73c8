"""Abuse aimed at the database: a request with many aliases of database fields holds at most
``database.max_conns_per_request`` connections at once (and a budget of one never deadlocks);
cursors and DateTime inputs the database cannot take are BAD_USER_INPUT naming the argument."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import select

from gql_api.auth.tokens import issue_access_token
from gql_api.config import Settings
from gql_api.db import Database
from gql_api.graphql.engine.persisted import sha256_hex
from gql_api.web.app import create_app
from tests.conftest import WAITING_ON_LOCKS, GraphQLClient, MadeUser, error_codes, make_settings
from tests.server_support import free_port

ALIASES = 15
POLL_TIMEOUT_S = 20.0


def _aliased(field: str, count: int = ALIASES) -> str:
    return "{ " + " ".join(f"a{n}: {field}" for n in range(count)) + " }"


async def _waiting_on_locks(conn: asyncpg.Connection) -> int:
    """The service's backends whose statement waits for a lock (the test holds it)."""
    count: int = await conn.fetchval(WAITING_ON_LOCKS)
    return count


async def test_one_request_holds_at_most_its_budget_of_connections(
    gql: GraphQLClient, admin_token: str, database_url: str, settings: Settings
) -> None:
    budget = settings.database.max_conns_per_request
    assert budget < ALIASES
    locker = await asyncpg.connect(database_url)
    # Another connection watches: inside the locker's transaction pg_stat_activity would be
    # read once and then served from that transaction's snapshot.
    observer = await asyncpg.connect(database_url)
    try:
        # Every auditLogs statement of the request waits for this lock while holding its
        # connection; the caller's token check reads other tables and goes through.
        transaction = locker.transaction()
        await transaction.start()
        await locker.execute("LOCK TABLE audit_logs IN ACCESS EXCLUSIVE MODE")
        request = asyncio.create_task(
            gql(_aliased("auditLogs(first: 1) { edges { node { id } } }"), token=admin_token)
        )
        try:
            seen: list[int] = []
            deadline = time.monotonic() + POLL_TIMEOUT_S
            while time.monotonic() < deadline and not request.done():
                seen.append(await _waiting_on_locks(observer))
                if seen[-1] >= budget:
                    break
                await asyncio.sleep(0.02)
            assert seen and seen[-1] >= budget, seen  # the request did reach the database
            # Fifteen concurrent fields: without a budget they would all be waiting by now.
            for _ in range(25):
                seen.append(await _waiting_on_locks(observer))
                await asyncio.sleep(0.02)
        finally:
            await transaction.rollback()
        body = await asyncio.wait_for(request, POLL_TIMEOUT_S)
    finally:
        await observer.close()
        await locker.close()
    assert max(seen) == budget, seen
    assert error_codes(body) == [], body
    assert len(body["data"]) == ALIASES


@pytest.fixture
async def budget_of_one(database_url: str, db: Database) -> AsyncIterator[GraphQLClient]:
    """The app on the shared test database, with one connection per request, a short wait for
    it and a short statement timeout."""
    settings = make_settings(
        database_url,
        database={"max_conns_per_request": 1, "pool_timeout": "1s", "statement_timeout": "3s"},
    )
    database = Database(settings.database, database_url, None)
    app = create_app(settings, database)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40001))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                yield GraphQLClient(http)
    finally:
        await database.dispose()


async def test_a_budget_of_one_connection_serves_everything_without_deadlock(
    budget_of_one: GraphQLClient, admin: MadeUser, admin_token: str
) -> None:
    gql = budget_of_one
    registered = await asyncio.wait_for(
        gql(
            "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }",
            {
                "i": {
                    "email": "budget@example.com",
                    "password": "a budget of one connection",
                    "firstName": "B",
                    "lastName": "O",
                }
            },
        ),
        POLL_TIMEOUT_S,
    )
    assert error_codes(registered) == [], registered
    # Concurrent fields, nested loaders, a transaction-backed connection (auditLogs) and the
    # token check, all through one connection at a time.
    page = "users(first: 5) { totalCount edges { node { id profile { bio } sessions { id } } } }"
    query = (
        "{ me { id sessions { id } } "
        + " ".join(f"p{n}: {page}" for n in range(4))
        + " logs: auditLogs(first: 5) { edges { node { action } } } health { status } }"
    )
    body = await asyncio.wait_for(gql(query, token=admin_token), POLL_TIMEOUT_S)
    assert error_codes(body) == [], body
    assert body["data"]["p3"]["totalCount"] == 2
    assert body["data"]["health"]["status"] == "ok"
    changed = await asyncio.wait_for(
        gql(
            "mutation($c: String!, $n: String!) "
            "{ changePassword(currentPassword: $c, newPassword: $n) { accessToken } }",
            {"c": admin.password, "n": "another long passphrase"},
            token=admin_token,
        ),
        POLL_TIMEOUT_S,
    )
    assert error_codes(changed) == [], changed


async def test_a_field_waits_for_the_request_budget_at_most_the_pool_timeout(
    budget_of_one: GraphQLClient, admin_token: str, database_url: str
) -> None:
    locker = await asyncpg.connect(database_url)
    try:
        transaction = locker.transaction()
        await transaction.start()
        await locker.execute("LOCK TABLE audit_logs IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        # The first alias holds the request's one connection, blocked by the lock until the
        # statement timeout (3 s); the other waits for that connection and gives up after
        # pool_timeout (1 s), where without a budget it would have run into the lock too.
        request = asyncio.create_task(
            budget_of_one(
                _aliased("auditLogs(first: 1) { edges { node { id } } }", 2), token=admin_token
            )
        )
        try:
            deadline = started + POLL_TIMEOUT_S
            while not request.done():
                assert time.monotonic() < deadline, "the request hung"
                await asyncio.sleep(0.05)
        finally:
            await transaction.rollback()
        body = await request
    finally:
        await locker.close()
    # auditLogs is non-null: the first failed alias nulls the whole answer.
    assert error_codes(body) == ["SERVICE_UNAVAILABLE"], body
    assert "busy" in body["errors"][0]["message"] and body["errors"][0]["path"] == ["a1"], body


async def test_a_read_inside_a_transaction_of_the_same_request_does_not_wait_for_itself(
    database_url: str, db: Database
) -> None:
    settings = make_settings(database_url, database={"max_conns_per_request": 1})
    request_db = Database(settings.database, database_url, None).for_request()
    try:

        async def nested() -> list[Any]:
            async with request_db.transaction() as session:
                await session.execute(select(1))
                return await request_db.fetch(select(2))

        rows = await asyncio.wait_for(nested(), POLL_TIMEOUT_S)
        assert [tuple(row) for row in rows] == [(2,)]
    finally:
        await request_db.dispose()


# --- cursors and DateTime inputs the database cannot take ------------------------------------

USERS_AFTER = "query($after: String) { users(first: 2, after: $after) { edges { cursor } } }"
USERS_BEFORE = "query($b: String) { users(last: 2, before: $b) { edges { cursor } } }"
AUDIT_AFTER = "query($after: String) { auditLogs(first: 2, after: $after) { edges { cursor } } }"
# Python can parse these, but not turn them into UTC (year 10000 and year 0).
OUT_OF_RANGE = ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"]
ROW_ID = "00000000-0000-0000-0000-000000000001"


def _cursor(payload: Any) -> str:
    raw = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _bad_input(body: dict[str, Any], argument: str) -> None:
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert argument in body["errors"][0]["extensions"]["fields"], body


@pytest.mark.parametrize("moment", OUT_OF_RANGE)
async def test_users_cursor_with_an_unstorable_timestamp(
    gql: GraphQLClient, admin_token: str, moment: str
) -> None:
    for order, tag in (
        ("CREATED_AT", "users:created_at:desc"),
        ("LAST_LOGIN_AT", "users:last_login_at:desc"),
    ):
        query = (
            "query($after: String) { users(first: 2, after: $after, "
            f"orderBy: {{field: {order}}}) {{ edges {{ cursor }} }} }}"
        )
        body = await gql(query, {"after": _cursor([tag, moment, ROW_ID])}, token=admin_token)
        _bad_input(body, "after")
    body = await gql(
        USERS_BEFORE, {"b": _cursor(["users:created_at:desc", moment, ROW_ID])}, token=admin_token
    )
    _bad_input(body, "before")


@pytest.mark.parametrize("moment", OUT_OF_RANGE)
async def test_audit_cursor_with_an_unstorable_timestamp(
    gql: GraphQLClient, admin_token: str, moment: str
) -> None:
    body = await gql(
        AUDIT_AFTER,
        {"after": _cursor(["audit:created_at:desc", moment, ROW_ID])},
        token=admin_token,
    )
    _bad_input(body, "after")


@pytest.mark.parametrize("query", [USERS_AFTER, AUDIT_AFTER])
async def test_cursor_with_deeply_nested_json(
    gql: GraphQLClient, admin_token: str, query: str
) -> None:
    for depth in (5_000, 100_000):
        nested = _cursor("[" * depth + "]" * depth)
        body = await gql(query, {"after": nested}, token=admin_token)
        _bad_input(body, "after")


async def test_cursor_with_a_text_key_the_database_refuses(
    gql: GraphQLClient, admin_token: str
) -> None:
    query = (
        "query($after: String) { users(first: 2, after: $after, orderBy: {field: EMAIL}) "
        "{ edges { cursor } } }"
    )
    for key in ("a\u0000b", "\ud800"):
        body = await gql(
            query, {"after": _cursor(["users:email:desc", key, ROW_ID])}, token=admin_token
        )
        _bad_input(body, "after")


@pytest.mark.parametrize("moment", OUT_OF_RANGE)
@pytest.mark.parametrize("name", ["createdAfter", "createdBefore"])
async def test_users_filter_with_an_unstorable_timestamp(
    gql: GraphQLClient, admin_token: str, moment: str, name: str
) -> None:
    by_variable = await gql(
        "query($f: UserFilter) { users(first: 2, filter: $f) { edges { cursor } } }",
        {"f": {name: moment}},
        token=admin_token,
    )
    _bad_input(by_variable, f"filter.{name}")
    inline = await gql(
        f'{{ users(first: 2, filter: {{{name}: "{moment}"}}) {{ edges {{ cursor }} }} }}',
        token=admin_token,
    )
    _bad_input(inline, f"filter.{name}")


@pytest.mark.parametrize("moment", OUT_OF_RANGE)
@pytest.mark.parametrize("name", ["since", "until"])
async def test_audit_filter_with_an_unstorable_timestamp(
    gql: GraphQLClient, admin_token: str, moment: str, name: str
) -> None:
    body = await gql(
        "query($f: AuditLogFilter) { auditLogs(first: 2, filter: $f) { edges { cursor } } }",
        {"f": {name: moment}},
        token=admin_token,
    )
    _bad_input(body, f"filter.{name}")


async def test_timestamps_at_the_edges_of_the_range_still_work(
    gql: GraphQLClient, admin_token: str
) -> None:
    """Refusing what cannot be stored must not refuse what can (year 1 and 9999 in UTC)."""
    for moment in ("9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00+00:00"):
        cursor = _cursor(["users:created_at:desc", moment, ROW_ID])
        body = await gql(USERS_AFTER, {"after": cursor}, token=admin_token)
        assert error_codes(body) == [], body
        body = await gql(
            "query($f: UserFilter) { users(first: 2, filter: $f) { edges { cursor } } }",
            {"f": {"createdAfter": moment, "createdBefore": moment}},
            token=admin_token,
        )
        assert error_codes(body) == [], body


# --- a database that cannot be reached ---------------------------------------------------------


@pytest.fixture
async def unreachable() -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    """The app on a database address where nothing listens (connections are refused)."""
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    settings = make_settings(url, database={"connect_timeout": "2s", "pool_timeout": "2s"})
    database = Database(settings.database, url, None)
    app = create_app(settings, database)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40002))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                yield http, settings
    finally:
        await database.dispose()


async def test_every_path_answers_an_unreachable_database_with_a_code(
    unreachable: tuple[httpx.AsyncClient, Settings],
) -> None:
    http, settings = unreachable
    token, _ttl = issue_access_token(
        settings.auth, user_id=uuid.uuid4(), session_id=uuid.uuid4(), role="admin"
    )
    bearer = {"Authorization": f"Bearer {token}"}
    register = {
        "query": "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }",
        "variables": {
            "i": {
                "email": "x@example.com",
                "password": "long enough pw",
                "firstName": "X",
                "lastName": "Y",
            }
        },
    }
    apq = {
        "extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha256_hex("{ me { id } }")}}
    }
    requests = [
        ({"query": "{ me { id } }"}, bearer),  # the token check (planned lane and full app)
        ({"query": "{ me { id email profile { bio } } }"}, bearer),
        ({"query": "{ users(first: 1) { edges { node { id } } } }"}, bearer),
        ({"query": "{ auditLogs(first: 1) { edges { node { id } } } }"}, bearer),
        (register, {}),
        (apq, {}),  # a persisted-query lookup, before execution
    ]
    for payload, headers in requests:
        response = await http.post("/graphql", json=payload, headers=headers)
        assert response.status_code < 500, (payload, response.status_code, response.text)
        codes = error_codes(response.json())
        assert codes and set(codes) == {"SERVICE_UNAVAILABLE"}, (payload, response.text)

    health = (await http.post("/graphql", json={"query": "{ health { status } }"})).json()
    assert health["data"]["health"]["status"] == "degraded"
    ready = await http.get("/readyz")
    assert ready.status_code == 503 and ready.json()["status"] == "unavailable", ready.text
