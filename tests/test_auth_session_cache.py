"""Bearer checks remembered between requests (gql_api/auth/session_cache.py) and forgotten when
PostgreSQL's triggers say their user changed (migration 0015): real PostgreSQL, the app over
HTTP, and a real server process for changes made by another process."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY

from gql_api.auth.current import Viewer
from gql_api.auth.session_cache import CHANNEL, SessionCache
from gql_api.config import Settings
from gql_api.db import Database, libpq_url
from gql_api.db.commits import CHANGED_SETTING, changed_users
from gql_api.realtime import Listener
from tests.auth_support import login, other_app
from tests.conftest import GraphQLClient, MadeUser, error_codes, insert_user, session_token
from tests.realtime_support import graphql, servers, terminate_listeners
from tests.replica_support import poll
from tests.users_support import count_statements

ME = "{ me { id email role } }"
USERS = "{ users(first: 1) { totalCount } }"
# Long, so that only a notification (never the time limit) can end a remembered check here.
TTL = "60s"
# How long a notification may take to arrive: far below TTL.
WITHIN_S = 5.0


def _cached_checks() -> float:
    return REGISTRY.get_sample_value("gql_api_session_checks_total", {"source": "cache"}) or 0.0


@pytest.fixture
async def remembering(database_url: str, db: Database) -> AsyncIterator[GraphQLClient]:
    async with other_app(database_url, db, auth={"session_cache_ttl": TTL}) as gql:
        yield gql


async def until_remembered(gql: GraphQLClient, db: Database, token: str) -> dict[str, Any]:
    """Ask ``me`` until the check is answered from the cache (no statement at all: ``me`` is
    the viewer's own row). Earlier answers may miss: a notification of the test's set-up (the
    tables' truncation) may still be on its way, and forgets everything."""
    deadline = time.monotonic() + WITHIN_S
    while True:
        before = _cached_checks()
        with count_statements(db) as statements:
            body = await gql(ME, token=token)
        assert "errors" not in body, body
        if _cached_checks() == before + 1:
            assert statements == [], statements
            return body["data"]["me"]  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, "no check was ever answered from the cache"


async def until_refused(gql: GraphQLClient, query: str, token: str, code: str) -> None:
    """Ask ``query`` until it is refused with ``code``; fails after WITHIN_S."""

    async def refused() -> bool:
        body = await gql(query, token=token)
        return bool(body.get("errors")) and error_codes(body) == [code]

    await poll(refused, timeout=WITHIN_S, what=f"{query} refused with {code}")


async def elsewhere(database_url: str, sql: str, *args: Any) -> None:
    """A change made by another process (psql, the CLI, another replica): a connection of its
    own, so that only PostgreSQL's notification can tell the app."""
    conn = await asyncpg.connect(libpq_url(database_url))
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


async def test_a_remembered_check_sends_no_statement_and_a_logout_ends_it_at_once(
    remembering: GraphQLClient, db: Database, settings: Settings, user: MadeUser
) -> None:
    token = await session_token(db, settings, user)
    assert (await until_remembered(remembering, db, token))["email"] == user.email
    body = await remembering("mutation { logout }", token=token)
    assert body == {"data": {"logout": True}}, body
    # The very next request: this process's commit forgot the check before the answer left.
    assert error_codes(await remembering(ME, token=token)) == ["UNAUTHENTICATED"]


async def test_a_sign_in_by_someone_else_forgets_nothing_of_other_users(
    remembering: GraphQLClient, db: Database, settings: Settings, user: MadeUser
) -> None:
    other = await insert_user(db, email="other@example.com")
    token = await session_token(db, settings, user)
    await until_remembered(remembering, db, token)
    # Its transactions change the other user (a session, last_login_at) and commit here.
    signed_in = await login(remembering, other.email, other.password)
    assert "errors" not in signed_in, signed_in
    before = _cached_checks()
    with count_statements(db) as statements:
        assert "errors" not in await remembering(ME, token=token)
    assert statements == [] and _cached_checks() == before + 1


async def test_a_transaction_knows_which_users_it_changed(database_url: str, db: Database) -> None:
    users = [await insert_user(db, email=f"u{n}@example.com") for n in range(3)]
    conn = await asyncpg.connect(libpq_url(database_url))
    try:
        read = f"SELECT current_setting('{CHANGED_SETTING}', true)"
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO login_attempts (kind, email) VALUES ('login', 'x@example.com')"
            )
            assert changed_users(await conn.fetchval(read)) == frozenset()
            for made in users[:2]:
                await conn.execute("UPDATE users SET login_count = 1 WHERE id = $1", made.id)
                await conn.execute("UPDATE users SET login_count = 2 WHERE id = $1", made.id)
            assert changed_users(await conn.fetchval(read)) == {users[0].id, users[1].id}
        assert changed_users(await conn.fetchval(read)) == frozenset()  # transaction-local
        async with conn.transaction():  # beyond about a hundred users: anyone
            await conn.execute(
                "INSERT INTO users (email, password_hash, first_name, last_name) "
                "SELECT 'many' || n || '@example.com', 'x', 'M', 'N' FROM generate_series(1, 150) n"
            )
            await conn.execute("UPDATE users SET login_count = 3")
            assert changed_users(await conn.fetchval(read)) is None
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE user_sessions SET revoked_at = now() WHERE user_id = $1",
        "UPDATE users SET status = 'inactive' WHERE id = $1",
        "DELETE FROM users WHERE id = $1",
        "TRUNCATE user_sessions",
    ],
)
async def test_a_change_made_by_another_process_ends_remembered_checks(
    remembering: GraphQLClient,
    db: Database,
    settings: Settings,
    database_url: str,
    user: MadeUser,
    change: str,
) -> None:
    token = await session_token(db, settings, user)
    await until_remembered(remembering, db, token)
    await elsewhere(database_url, *([change] if "TRUNCATE" in change else [change, user.id]))
    await until_refused(remembering, ME, token, "UNAUTHENTICATED")


async def test_a_role_taken_away_elsewhere_ends_admin_rights(
    remembering: GraphQLClient, db: Database, settings: Settings, database_url: str
) -> None:
    admin = await insert_user(db, role="admin")
    token = await session_token(db, settings, admin)
    assert (await until_remembered(remembering, db, token))["role"] == "ADMIN"
    assert "errors" not in await remembering(USERS, token=token)
    await elsewhere(database_url, "UPDATE users SET role = 'user' WHERE id = $1", admin.id)
    await until_refused(remembering, USERS, token, "FORBIDDEN")


async def test_a_second_factor_confirmed_elsewhere_gives_an_admin_its_rights(
    database_url: str, db: Database, settings: Settings
) -> None:
    admin = await insert_user(db, role="admin")
    token = await session_token(db, settings, admin)
    async with other_app(
        database_url, db, auth={"session_cache_ttl": TTL, "require_mfa_for_admins": True}
    ) as gql:
        await until_remembered(gql, db, token)
        assert error_codes(await gql(USERS, token=token)) == ["FORBIDDEN"]
        await elsewhere(
            database_url,
            "INSERT INTO user_mfa_factors (user_id, kind, confirmed_at) VALUES ($1, 'totp', now())",
            admin.id,
        )

        async def answered() -> bool:
            return "errors" not in await gql(USERS, token=token)

        await poll(answered, timeout=WITHIN_S, what="admin rights after the second factor")


async def test_with_no_time_to_live_every_request_reads_its_session(
    database_url: str, db: Database, settings: Settings, user: MadeUser
) -> None:
    token = await session_token(db, settings, user)
    async with other_app(database_url, db, auth={"session_cache_ttl": "0"}) as gql:
        before = _cached_checks()
        for _ in range(3):
            with count_statements(db) as statements:
                assert "errors" not in await gql(ME, token=token)
            assert len(statements) == 1, statements
        assert _cached_checks() == before


async def test_a_server_process_forgets_a_session_revoked_by_another(
    db: Database, settings: Settings, database_url: str, tmp_path: Path, user: MadeUser
) -> None:
    token = await session_token(db, settings, user)
    with servers(database_url, tmp_path, USER_SERVICE_AUTH_SESSION_CACHE_TTL=TTL) as (server,):
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:

            async def remembered() -> bool:
                assert "errors" not in await graphql(server, ME, token)
                return _remembered_by(await http.get("/metrics")) > 0

            await poll(remembered, timeout=WITHIN_S, what="an answer from the server's cache")
        await elsewhere(
            database_url, "UPDATE user_sessions SET revoked_at = now() WHERE user_id = $1", user.id
        )

        async def refused() -> bool:
            return "errors" in await graphql(server, ME, token)

        await poll(refused, timeout=WITHIN_S, what="the revoked session refused")


def _remembered_by(response: httpx.Response) -> float:
    assert response.status_code == 200, response.text
    for line in response.text.splitlines():
        if line.startswith('gql_api_session_checks_total{source="cache"}'):
            return float(line.split()[-1])
    return 0.0


# --- the cache's rules, on the class itself ----------------------------------------------------


def _viewer(user_id: uuid.UUID | None = None, **columns: Any) -> Viewer:
    class User(tuple[Any, ...]):
        id = user_id or uuid.uuid4()

    return Viewer(user=User(columns.values()), session_id=uuid.uuid4())


def _later(seconds: float = 3600) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def _watching(ttl_s: float = 60, max_bytes: int = 1 << 20) -> SessionCache:
    cache = SessionCache(ttl_s=ttl_s, max_bytes=max_bytes)
    cache.listening()
    return cache


def _kept(cache: SessionCache, viewer: Viewer) -> bool:
    return cache.viewer(viewer.session_id, viewer.user.id) is viewer


def test_a_check_that_read_before_a_change_is_not_kept() -> None:
    cache = _watching()
    viewer = _viewer()
    changes: list[Callable[[], None]] = [
        lambda: cache.notified(str(uuid.uuid4())),  # any user: the read may predate it
        lambda: cache.notified("*"),
        cache.forget_all,  # a commit of this process on a bare connection
        lambda: cache.forget(frozenset((uuid.uuid4(),))),  # a commit that changed another user
        cache.lost,
    ]
    for change in changes:
        ticket = cache.ticket()
        change()
        cache.listening()
        cache.keep(ticket, viewer, _later())
        assert not _kept(cache, viewer)
    cache.keep(cache.ticket(), viewer, _later())
    assert _kept(cache, viewer)


def test_nothing_is_kept_or_trusted_while_notifications_may_be_missed() -> None:
    cache = SessionCache(ttl_s=60, max_bytes=1 << 20)
    viewer = _viewer()
    cache.keep(cache.ticket(), viewer, _later())  # not listening yet
    assert not _kept(cache, viewer)
    cache.listening()
    cache.keep(cache.ticket(), viewer, _later())
    assert _kept(cache, viewer)
    cache.lost()
    assert not _kept(cache, viewer) and len(cache) == 0


def test_a_notification_forgets_only_its_users_sessions() -> None:
    cache = _watching()
    mine, same_user, other = _viewer(), None, _viewer()
    same_user = Viewer(user=mine.user, session_id=uuid.uuid4())
    for viewer in (mine, same_user, other):
        cache.keep(cache.ticket(), viewer, _later())
    cache.notified(str(mine.user.id))
    assert not _kept(cache, mine) and not _kept(cache, same_user)
    assert _kept(cache, other)
    cache.notified("not a user id")  # unknown: everything goes
    assert not _kept(cache, other) and cache.kept_bytes == 0


def test_a_check_is_trusted_neither_past_its_time_nor_past_its_session() -> None:
    viewer = _viewer()
    cache = _watching(ttl_s=0.05)
    cache.keep(cache.ticket(), viewer, _later())
    assert _kept(cache, viewer)
    deadline = time.monotonic() + 5
    while _kept(cache, viewer):
        assert time.monotonic() < deadline
    cache = _watching()
    cache.keep(cache.ticket(), viewer, _later(-1))
    assert not _kept(cache, viewer)
    cache.keep(cache.ticket(), viewer, _later())
    assert cache.viewer(viewer.session_id, uuid.uuid4()) is None  # another user's token


def test_the_cache_is_bounded_by_bytes_and_drops_the_oldest_first() -> None:
    one = SessionCache(ttl_s=60, max_bytes=10**9)
    one.listening()
    one.keep(one.ticket(), _viewer(email="x" * 1000), _later())
    size = one.kept_bytes
    cache = _watching(max_bytes=size * 3)
    viewers = [_viewer(email="x" * 1000) for _ in range(5)]
    for viewer in viewers:
        cache.keep(cache.ticket(), viewer, _later())
        assert cache.kept_bytes <= size * 3
    assert [_kept(cache, v) for v in viewers] == [False, False, True, True, True]
    huge = _viewer(email="x" * size * 4)
    cache.keep(cache.ticket(), huge, _later())
    assert not _kept(cache, huge) and _kept(cache, viewers[-1])


class _Recorder:
    """A channel that writes down what the listener tells it."""

    name = "gql_api_test_recorder"

    def __init__(self) -> None:
        self.heard: list[str] = []

    def notified(self, payload: str) -> None:
        self.heard.append(f"notified {payload}")

    def listening(self) -> None:
        self.heard.append("listening")

    def lost(self) -> None:
        self.heard.append("lost")


async def _until(condition: Callable[[], bool], what: str) -> None:
    async def check() -> bool:
        return condition()

    await poll(check, timeout=WITHIN_S, what=what)


async def test_the_listener_tells_the_cache_when_its_connection_is_lost(
    database_url: str, settings: Settings
) -> None:
    cache = SessionCache(ttl_s=60, max_bytes=1 << 20)
    recorder = _Recorder()
    listener = Listener(database_url, [cache, recorder], settings.realtime)
    viewer = _viewer()
    listener.start()
    try:
        await _until(lambda: recorder.heard == ["listening"], "it never listened")
        cache.keep(cache.ticket(), viewer, _later())
        assert _kept(cache, viewer)
        await elsewhere(database_url, f"NOTIFY {CHANNEL}, '{viewer.user.id}'")
        await _until(lambda: not _kept(cache, viewer), "the notification was not heard")
        cache.keep(cache.ticket(), viewer, _later())
        assert _kept(cache, viewer)
        assert await terminate_listeners(database_url) >= 1
        await _until(lambda: "lost" in recorder.heard, "the lost connection went unnoticed")
        assert not _kept(cache, viewer)  # forgotten when the loss was noticed
        await _until(lambda: recorder.heard[-1] == "listening", "it never listened again")
        # (told "lost" when the connection dropped and again when the loop gave it up)
        told = [h for n, h in enumerate(recorder.heard) if n == 0 or recorder.heard[n - 1] != h]
        assert told == ["listening", "lost", "listening"], recorder.heard
        cache.keep(cache.ticket(), viewer, _later())
        assert _kept(cache, viewer)
    finally:
        await listener.stop()
    assert not _kept(cache, viewer)  # stopped: nothing is trusted any more
