"""Read replicas for real: a primary of the test's own and a streaming replica of it
(``pg_basebackup -R``, tests/replica_support.py), the app over HTTP (ASGI, or real uvicorn
processes where the point is that nothing is shared between server processes but PostgreSQL).

Where a read ran is told by ``pg_stat_statements`` on each server; the replica is held back with
``pg_wal_replay_pause()`` and stopped with ``pg_ctl stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict

from gql_api.config import Settings
from gql_api.db import Database
from gql_api.web.app import create_app
from tests.conftest import MadeUser, insert_user, make_settings, session_token
from tests.pg_control import ControlledPostgres
from tests.replica_support import (
    DATABASE,
    StreamingReplica,
    caught_up,
    missing_binaries,
    pause_replay,
    poll,
    resume_replay,
    statement_calls,
)
from tests.server_support import free_port, server_env, uvicorn_server

pytestmark = pytest.mark.slow

# The loaders' batches and the page's count, as pg_stat_statements shows them.
PROFILES_BATCH = ("FROM user_profiles", "user_id = ANY")
USERS_COUNT = ("sum(user_counts.users)", "FROM user_counts")  # totalCount (migration 0014)
ADMIN_PAGE = """{ users(first: 50) { totalCount edges { node { id firstName
  profile { bio } sessions { id } } } } }"""


@dataclass
class Pair:
    primary: ControlledPostgres
    replica: StreamingReplica

    async def caught_up(self) -> None:
        await caught_up(self.primary.url, self.replica.url)


@pytest.fixture(scope="module")
async def pair(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Pair]:
    reason = missing_binaries()
    if reason is not None:
        pytest.skip(f"no streaming replica can be built here: {reason}")
    root = tmp_path_factory.mktemp("replicas")
    primary = ControlledPostgres(root / "primary", database=DATABASE)
    try:
        await primary.migrate()
        conn = await asyncpg.connect(primary.url)
        try:  # preloaded by the embedded server; the view itself replicates
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        finally:
            await conn.close()
        replica = StreamingReplica(primary, root / "replica")
        try:
            built = Pair(primary, replica)
            await built.caught_up()
            yield built
        finally:
            replica.destroy()
    finally:
        primary.destroy()


@dataclass
class Api:
    """GraphQL over one HTTP client (ASGI or a real server)."""

    http: httpx.AsyncClient

    async def gql(
        self, query: str, token: str | None, variables: dict[str, Any] | None = None
    ) -> Any:
        response = await self.http.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {token}"} if token else {},
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def replicas(self) -> list[dict[str, Any]]:
        body = (
            await self.http.post(
                "/graphql", json={"query": "{ health { replicas { name inRotation lagSeconds } } }"}
            )
        ).json()
        assert "errors" not in body, body
        replicas: list[dict[str, Any]] = body["data"]["health"]["replicas"]
        return replicas

    async def in_rotation(self, expected: bool = True, timeout: float = 20) -> None:
        async def reached() -> bool:
            return [r["inRotation"] for r in await self.replicas()] == [expected]

        await poll(reached, timeout=timeout, what=f"replica inRotation={expected}")

    async def in_rotation_all(self, count: int, timeout: float = 20) -> None:
        async def reached() -> bool:
            return [r["inRotation"] for r in await self.replicas()] == [True] * count

        await poll(reached, timeout=timeout, what=f"{count} replicas in rotation")


@dataclass
class Served(Api):
    settings: Settings
    db: Database

    async def admin(self, name: str = "Ada") -> tuple[MadeUser, str]:
        made = await insert_user(self.db, role="admin", first_name=name)
        return made, await session_token(self.db, self.settings, made)


def replica_settings(pair: Pair, **database: Any) -> Settings:
    values = {
        "read_replica_urls": [pair.replica.url],
        "replica_check_interval": "100ms",
        "replica_max_lag": "1s",
        "cleanup_interval": "0",
        **database,
    }
    return make_settings(pair.primary.url, database=values)


@asynccontextmanager
async def serving(pair: Pair, **database: Any) -> AsyncIterator[Served]:
    settings = replica_settings(pair, **database)
    db = Database(settings.database, pair.primary.url, None)
    try:
        app = create_app(settings, db)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                yield Served(http, settings, db)
    finally:
        await db.dispose()


def no_errors(body: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors") or []]


async def test_admin_reads_land_on_the_replica(pair: Pair) -> None:
    async with serving(pair) as served:
        _admin, token = await served.admin()
        for n in range(3):
            await insert_user(served.db, first_name=f"Page{n}")
        await pair.caught_up()
        await served.in_rotation()
        primary, replica = pair.primary.url, pair.replica.url
        before = {
            "replica": await statement_calls(replica, *PROFILES_BATCH),
            "primary": await statement_calls(primary, *PROFILES_BATCH),
            "replica_count": await statement_calls(replica, *USERS_COUNT),
            "primary_count": await statement_calls(primary, *USERS_COUNT),
            "replica_audit": await statement_calls(replica, "FROM audit_logs"),
            "replica_size": await statement_calls(replica, "pg_database_size"),
        }
        data = no_errors(
            await served.gql(
                ADMIN_PAGE[:-1] + " auditLogs(first: 5) { totalCount } dbSize { name } }",
                token,
            )
        )
        assert data["users"]["totalCount"] == 4
        assert data["dbSize"]["name"] == DATABASE
        assert await statement_calls(replica, *PROFILES_BATCH) > before["replica"]
        assert await statement_calls(replica, *USERS_COUNT) > before["replica_count"]
        assert await statement_calls(replica, "FROM audit_logs") > before["replica_audit"]
        assert await statement_calls(replica, "pg_database_size") > before["replica_size"]
        # None of them ran on the primary.
        assert await statement_calls(primary, *PROFILES_BATCH) == before["primary"]
        assert await statement_calls(primary, *USERS_COUNT) == before["primary_count"]

        pools = no_errors(
            await served.gql(
                "{ dbPoolStats { engine openConnections replicas { engine openConnections "
                "openedTotal } } }",
                token,
            )
        )["dbPoolStats"]
        assert pools["engine"] == "primary" and pools["openConnections"] >= 1
        assert [r["engine"] for r in pools["replicas"]] == ["replica-0"]
        assert pools["replicas"][0]["openedTotal"] >= 1


async def test_revocation_is_immediate_while_the_replica_is_paused(pair: Pair) -> None:
    # A generous lag limit: the paused replica stays in rotation, and still nothing it holds
    # decides who the caller is.
    async with serving(pair, replica_max_lag="60s") as served:
        _admin, token = await served.admin()
        await pair.caught_up()
        await served.in_rotation()
        await pause_replay(pair.replica.url)
        try:
            assert no_errors(await served.gql("mutation { logout }", token)) == {"logout": True}
            assert codes(await served.gql(ADMIN_PAGE, token)) == ["UNAUTHENTICATED"]
            assert [r["inRotation"] for r in await served.replicas()] == [True]
        finally:
            await resume_replay(pair.replica.url)


async def test_own_writes_are_read_back_on_another_server_process(
    pair: Pair, tmp_path: Path
) -> None:
    """Two uvicorn processes, the replica paused but in rotation: the admin who wrote through
    one process reads the write back through the other; an admin who did not write is served
    the replica's (stale) copy, which shows the replica really is the one paused and in use."""
    settings = replica_settings(pair)
    db = Database(settings.database, pair.primary.url, None)
    try:
        writer = await insert_user(db, role="admin", first_name="Writer")
        other = await insert_user(db, role="admin", first_name="Other")
        member = await insert_user(db, first_name="Before")
        newcomer = await insert_user(db, first_name="New")  # no session, no write yet
        writer_token = await session_token(db, settings, writer)
        other_token = await session_token(db, settings, other)
        member_token = await session_token(db, settings, member)
    finally:
        await db.dispose()
    env = server_env(
        pair.primary.url,
        USER_SERVICE_DATABASE_READ_REPLICA_URLS=pair.replica.url,
        USER_SERVICE_DATABASE_REPLICA_MAX_LAG="60s",
        USER_SERVICE_DATABASE_REPLICA_CHECK_INTERVAL="100ms",
        USER_SERVICE_DATABASE_CLEANUP_INTERVAL="0",
    )
    read_user = "query($id: ID!) { user(id: $id) { firstName profile { bio } } }"
    with (
        uvicorn_server(env, tmp_path / "a.log") as first,
        uvicorn_server(env, tmp_path / "b.log") as second,
    ):
        async with (
            httpx.AsyncClient(base_url=first.url, timeout=30) as a,
            httpx.AsyncClient(base_url=second.url, timeout=30) as b,
        ):
            await pair.caught_up()
            on_a, on_b = Api(a), Api(b)
            for api in (on_a, on_b):
                await api.in_rotation()
            await pause_replay(pair.replica.url)
            try:
                write = await on_a.gql(
                    'mutation($id: ID!) { updateUser(id: $id, input: {firstName: "After"}) '
                    "{ firstName } }",
                    writer_token,
                    {"id": str(member.id)},
                )
                assert no_errors(write) == {"updateUser": {"firstName": "After"}}
                mine = await on_b.gql(read_user, writer_token, {"id": str(member.id)})
                assert no_errors(mine)["user"]["firstName"] == "After"
                theirs = await on_b.gql(read_user, other_token, {"id": str(member.id)})
                assert no_errors(theirs)["user"]["firstName"] == "Before"

                # A member's own profile change, read back through the other process.
                changed = await on_a.gql(
                    'mutation { updateMe(input: {profile: {bio: "fresh"}}) { id } }',
                    member_token,
                )
                no_errors(changed)
                me = await on_b.gql("{ me { profile { bio } } }", member_token)
                assert no_errors(me)["me"]["profile"]["bio"] == "fresh"

                # A sign-in writes a session for a caller who was nobody a moment before: the
                # new session is read back through the other process too.
                login = await on_a.gql(
                    "mutation($i: LoginInput!) { login(input: $i) { accessToken } }",
                    None,
                    {"i": {"email": newcomer.email, "password": newcomer.password}},
                )
                fresh = no_errors(login)["login"]["accessToken"]
                sessions = await on_b.gql("{ me { sessions { id } } }", fresh)
                assert len(no_errors(sessions)["me"]["sessions"]) == 1, sessions
            finally:
                await resume_replay(pair.replica.url)
        assert "Traceback" not in first.log() + second.log(), first.errors() + second.errors()


async def test_a_lagging_replica_leaves_the_rotation_and_comes_back(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gql_api.db.replicas")
    async with serving(pair, replica_max_lag="1s") as served:
        _admin, token = await served.admin()
        await pair.caught_up()
        await served.in_rotation()
        await pause_replay(pair.replica.url)
        try:
            late = await insert_user(served.db, first_name="OnlyOnThePrimary")
            await served.in_rotation(False, timeout=15)
            assert any("out of rotation (lag)" in r.getMessage() for r in caplog.records)
            metrics = (await served.http.get("/metrics")).text
            assert 'gql_api_db_replica_removals_total{reason="lag",replica="replica-0"}' in metrics
            ready = await served.http.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["replicas"][0]["inRotation"] is False
            # Reads fall back to the primary: the row the paused replica lacks is there.
            before = await statement_calls(pair.replica.url, *USERS_COUNT)
            page = no_errors(await served.gql(ADMIN_PAGE, token))
            assert str(late.id) in {e["node"]["id"] for e in page["users"]["edges"]}
            assert await statement_calls(pair.replica.url, *USERS_COUNT) == before
        finally:
            await resume_replay(pair.replica.url)
        await served.in_rotation(True, timeout=15)
        assert any("in rotation" in r.getMessage() for r in caplog.records)


async def test_a_stopped_replica_costs_no_failed_request(pair: Pair) -> None:
    async with serving(pair) as served:
        _admin, token = await served.admin()
        await pair.caught_up()
        await served.in_rotation()
        full = ADMIN_PAGE[:-1] + " auditLogs(first: 5) { totalCount } dbSize { name } }"
        no_errors(await served.gql(full, token))  # the replica's pool holds connections now
        pair.replica.stop()
        try:
            for _ in range(10):
                no_errors(await served.gql(full, token))
            assert [r["inRotation"] for r in await served.replicas()] == [False]
            ready = await served.http.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["replicas"][0]["inRotation"] is False
        finally:
            pair.replica.start()
        await served.in_rotation(True, timeout=30)
        before = await statement_calls(pair.replica.url, *USERS_COUNT)
        no_errors(await served.gql(full, token))
        assert await statement_calls(pair.replica.url, *USERS_COUNT) > before


async def _page_and_count_calls(url: str) -> int:
    return await statement_calls(url, "FROM users") + await statement_calls(url, *USERS_COUNT)


async def test_several_replicas_are_used_in_turn(pair: Pair) -> None:
    # Beside the primary: the folders above it are open to the server's system user.
    second = StreamingReplica(pair.primary, pair.primary.data_dir.parent / "second", DATABASE)
    try:
        await caught_up(pair.primary.url, second.url)
        urls = [pair.replica.url, second.url]
        async with serving(pair, read_replica_urls=urls) as served:
            _admin, token = await served.admin()
            await pair.caught_up()
            await caught_up(pair.primary.url, second.url)
            await served.in_rotation_all(2)
            before = [await _page_and_count_calls(url) for url in urls]
            for _ in range(4):
                no_errors(await served.gql(ADMIN_PAGE, token))
            after = [await _page_and_count_calls(url) for url in urls]
            # Each read takes the next replica: a page's rows and its count (two of the four
            # reads of a request, with the two loaders) land on one each.
            assert [b - a for a, b in zip(before, after, strict=True)] == [4, 4]
    finally:
        second.destroy()


def pids_that_served(metrics_dir: Path) -> set[str]:
    """The processes whose metric file counts GraphQL requests (prometheus-client's
    multi-process files are named ``counter_<pid>.db``)."""
    served = set()
    for path in metrics_dir.glob("counter_*.db"):
        for key, value, _timestamp, _pos in MmapedDict.read_all_values_from_file(str(path)):
            if "gql_api_graphql_requests_total" in key and value > 0:
                served.add(path.stem.rsplit("_", 1)[-1])
    return served


async def test_serve_workers_share_revocation_with_a_paused_replica(
    pair: Pair, tmp_path: Path
) -> None:
    """``gql-api serve --workers 2`` with the replica: both workers serve admin pages through
    it, and a logout is refused by every worker, replay paused or not (each worker checks the
    session on the primary, or trusts a recent check until PostgreSQL notifies it of a change;
    nothing is shared between them but PostgreSQL)."""
    settings = replica_settings(pair)
    db = Database(settings.database, pair.primary.url, None)
    try:
        admin = await insert_user(db, role="admin", first_name="Workers")
        token = await session_token(db, settings, admin)
    finally:
        await db.dispose()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = server_env(
        pair.primary.url,
        USER_SERVICE_DATABASE_READ_REPLICA_URLS=pair.replica.url,
        USER_SERVICE_DATABASE_REPLICA_MAX_LAG="60s",
        USER_SERVICE_DATABASE_REPLICA_CHECK_INTERVAL="100ms",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    port = free_port()
    gql_api = shutil.which("gql-api", path=str(Path(sys.executable).parent))
    assert gql_api is not None, "the gql-api console script of this environment"
    command = [gql_api, "serve", "--workers", "2", "--host", "127.0.0.1", "--port", str(port)]
    log_path = tmp_path / "serve.log"
    with log_path.open("w", encoding="utf-8") as log_file:
        server = subprocess.Popen(
            [*command, "--cleanup-interval", "0"],
            cwd=tmp_path,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        # A new connection per request: the kernel spreads them over both workers.
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30
        ) as http:
            api = Api(http)

            async def every_worker_ready() -> bool:
                if server.poll() is not None:
                    raise AssertionError(f"serve exited:\n{log_path.read_text()}")
                try:
                    answers = [await http.get("/readyz") for _ in range(6)]
                except httpx.TransportError:
                    return False
                return all(
                    a.status_code == 200 and a.json()["replicas"][0]["inRotation"] for a in answers
                )

            await poll(every_worker_ready, timeout=60, what="both workers ready, replica in use")
            await pair.caught_up()
            before = await statement_calls(pair.replica.url, *USERS_COUNT)
            for _ in range(12):
                no_errors(await api.gql(ADMIN_PAGE, token))
            assert await statement_calls(pair.replica.url, *USERS_COUNT) >= before + 12
            # Both workers answer: each counts its requests in a metric file of its own. Which
            # process accepts a new connection is the kernel's choice, not a rotation, so more
            # requests are sent (at most 200, within 30 s) until the second one has served too.
            deadline = time.monotonic() + 30
            for _ in range(200):
                if len(pids_that_served(metrics_dir)) >= 2 or time.monotonic() > deadline:
                    break
                no_errors(await api.gql(ADMIN_PAGE, token))
            assert len(pids_that_served(metrics_dir)) >= 2

            await pause_replay(pair.replica.url)
            try:
                assert no_errors(await api.gql("mutation { logout }", token)) == {"logout": True}

                async def refused() -> bool:
                    return codes(await api.gql(ADMIN_PAGE, token)) == ["UNAUTHENTICATED"]

                # The worker that took the logout refuses at once, the other once PostgreSQL's
                # notification reaches its session cache (far sooner than its 10 s): twelve
                # refusals in a row, spread over both, within 5 s.
                refusals = 0

                async def twelve_in_a_row() -> bool:
                    nonlocal refusals
                    refusals = refusals + 1 if await refused() else 0
                    return refusals >= 12

                await poll(twelve_in_a_row, timeout=5, what="the logout seen by every worker")
            finally:
                await resume_replay(pair.replica.url)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
    assert "Traceback" not in log_path.read_text(), log_path.read_text()[-4000:]


class CancelledAsItAnswers:
    """A row source whose answer and the cancellation of the task awaiting it arrive in one
    turn of the event loop, as when the lifespan cancels the replica checks at shutdown just as
    a check's read returns. ``asyncio.wait_for`` on Python 3.11 returned the rows and dropped
    the cancellation there, so the checks went on for ever and the shutdown never ended (a
    CI run hung 600 s on this)."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.watching: asyncio.Task[None] | None = None
        self.reads = 0

    async def fetch(self, statement: Any, params: dict[str, Any] | None = None) -> Any:
        rows = await self.source.fetch(statement, params)
        self.reads += 1
        assert self.watching is not None
        asyncio.get_running_loop().call_soon(self.watching.cancel)
        return rows


async def test_the_replica_checks_end_when_cancelled_as_a_read_returns(database_url: str) -> None:
    # The suite's own server stands in for the replica: only the checks' reads matter here.
    settings = make_settings(database_url, database={"read_replica_urls": [database_url]})
    db = Database(settings.database, database_url, None)
    try:
        primary = CancelledAsItAnswers(db)  # the primary's position: the first read of a check
        watching = asyncio.create_task(db.replicas.watch(primary))
        primary.watching = watching
        try:
            async with asyncio.timeout(10):
                with contextlib.suppress(asyncio.CancelledError):
                    await watching
            assert watching.cancelled()
            assert primary.reads == 1  # ended by the cancellation that came with its first read
        finally:
            watching.cancel()  # a check that survived it would otherwise run on
            await asyncio.wait([watching], timeout=10)
    finally:
        await db.dispose()
