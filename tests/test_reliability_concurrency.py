"""Concurrency and several instances, against real uvicorn processes on one PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from gql_api.db import Database
from tests.conftest import MadeUser, insert_user
from tests.hardening_support import post
from tests.replica_support import poll
from tests.server_support import RunningServer, server_env, uvicorn_server

pytestmark = pytest.mark.slow

REGISTER = """mutation($i: RegisterInput!) { register(input: $i) { user { id } } }"""
LOGIN = """mutation($i: LoginInput!) { login(input: $i) { accessToken refreshToken } }"""


@pytest.fixture(scope="module")
def two_servers(
    database_url: str, db: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, RunningServer]]:
    logs = tmp_path_factory.mktemp("instances")
    env = server_env(database_url, USER_SERVICE_AUTH_REGISTERMAXPERADDRESS="1000")
    with (
        uvicorn_server(env, logs / "a.log") as first,
        uvicorn_server(env, logs / "b.log") as second,
    ):
        yield first, second


def _codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors") or []]


async def test_fifty_parallel_registrations_of_one_email(two_servers: Any, db: Database) -> None:
    first, second = two_servers
    variables = {
        "i": {
            "email": "race@example.com",
            "password": "a racing password",
            "firstName": "R",
            "lastName": "C",
        }
    }
    async with (
        httpx.AsyncClient(base_url=first.url, timeout=60) as a,
        httpx.AsyncClient(base_url=second.url, timeout=60) as b,
    ):
        results = await asyncio.gather(
            *[post(a if n % 2 else b, REGISTER, variables) for n in range(50)]
        )
    successes = [r for r in results if not r.get("errors")]
    conflicts = [r for r in results if _codes(r) == ["CONFLICT"]]
    assert (len(successes), len(conflicts)) == (1, 49), [_codes(r) for r in results]
    async with db.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM users"))).scalar_one() == 1


async def test_fifty_parallel_logins_count_exactly(two_servers: Any, db: Database) -> None:
    first, second = two_servers
    user = await insert_user(db, email="busy@example.com")
    variables = {"i": {"email": user.email, "password": user.password}}
    async with (
        httpx.AsyncClient(base_url=first.url, timeout=60) as a,
        httpx.AsyncClient(base_url=second.url, timeout=60) as b,
    ):
        results = await asyncio.gather(
            *[post(a if n % 2 else b, LOGIN, variables) for n in range(50)]
        )
    assert all(not r.get("errors") for r in results), [_codes(r) for r in results]
    async with db.engine.connect() as conn:
        count, sessions = (
            await conn.execute(
                text(
                    "SELECT login_count, (SELECT count(*) FROM user_sessions"
                    " WHERE user_id = users.id AND revoked_at IS NULL) FROM users WHERE id = :id"
                ),
                {"id": user.id},
            )
        ).one()
    assert count == 50
    # The session cap (auth.max_sessions_per_user) keeps only the most recent sessions active.
    assert 1 <= sessions <= 10


async def test_parallel_profile_updates_never_lose_a_field(
    two_servers: Any, db: Database, user: MadeUser, user_token: str
) -> None:
    first, second = two_servers
    updates = [
        {"profile": {"bio": "a bio"}},
        {"profile": {"timezone": "Europe/Paris"}},
        {"profile": {"locale": "fr-FR"}},
        {"profile": {"phone": "+33123456789"}},
        {"profile": {"avatarUrl": "https://example.com/a.png"}},
        {"firstName": "Ursula"},
        {"lastName": "Le Guin"},
    ] * 3
    mutation = "mutation($i: UpdateMeInput!) { updateMe(input: $i) { id } }"
    async with (
        httpx.AsyncClient(base_url=first.url, timeout=60) as a,
        httpx.AsyncClient(base_url=second.url, timeout=60) as b,
    ):
        results = await asyncio.gather(
            *[
                post(a if n % 2 else b, mutation, {"i": update}, user_token)
                for n, update in enumerate(updates)
            ]
        )
        assert all(not r.get("errors") for r in results), [r.get("errors") for r in results]
        me = await post(
            a,
            "{ me { firstName lastName profile { bio timezone locale phone avatarUrl } } }",
            token=user_token,
        )
    assert me["data"]["me"] == {
        "firstName": "Ursula",
        "lastName": "Le Guin",
        "profile": {
            "bio": "a bio",
            "timezone": "Europe/Paris",
            "locale": "fr-FR",
            "phone": "+33123456789",
            "avatarUrl": "https://example.com/a.png",
        },
    }


async def test_tokens_and_logout_across_instances(two_servers: Any, db: Database) -> None:
    first, second = two_servers
    user = await insert_user(db, email="roamer@example.com")
    async with (
        httpx.AsyncClient(base_url=first.url, timeout=30) as a,
        httpx.AsyncClient(base_url=second.url, timeout=30) as b,
    ):
        issued = (await post(a, LOGIN, {"i": {"email": user.email, "password": user.password}}))[
            "data"
        ]["login"]
        token = issued["accessToken"]
        assert (await post(b, "{ me { email } }", token=token))["data"]["me"]["email"] == user.email
        # A refresh on B, then the rotated token is refused on A (after the grace window the
        # reuse would revoke the session; here it is simply the new pair that works).
        refreshed = await post(
            b,
            "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }",
            {"t": issued["refreshToken"]},
        )
        assert not refreshed.get("errors"), refreshed
        assert (await post(a, "mutation { logout }", token=token))["data"] == {"logout": True}
        # On A at once; on B once PostgreSQL's notification has told its session cache (the
        # cache trusts a check for 10 s: a refusal sooner is the notification's work).
        assert _codes(await post(a, "{ me { email } }", token=token)) == ["UNAUTHENTICATED"]

        async def refused_by_b() -> bool:
            return _codes(await post(b, "{ me { email } }", token=token)) == ["UNAUTHENTICATED"]

        await poll(refused_by_b, timeout=5, what="the logout seen by the other instance")
        for _ in range(5):
            assert await refused_by_b()


async def test_login_rate_limits_are_shared(two_servers: Any, db: Database) -> None:
    first, second = two_servers
    user = await insert_user(db, email="target@example.com")
    wrong = {"i": {"email": user.email, "password": "not the password"}}
    async with (
        httpx.AsyncClient(base_url=first.url, timeout=30) as a,
        httpx.AsyncClient(base_url=second.url, timeout=30) as b,
    ):
        for n in range(5):  # the per-account limit, spread over both instances
            assert _codes(await post(a if n % 2 else b, LOGIN, wrong)) == ["UNAUTHENTICATED"]
        limited = await post(a, LOGIN, {"i": {"email": user.email, "password": user.password}})
        assert _codes(limited) == ["RATE_LIMITED"]
        assert limited["errors"][0]["extensions"]["retryAfter"] > 0
        assert _codes(await post(b, LOGIN, wrong)) == ["RATE_LIMITED"]


async def test_persisted_queries_are_shared(two_servers: Any) -> None:
    first, second = two_servers
    query = "query SharedHealth { health { status } }"
    sha = hashlib.sha256(query.encode()).hexdigest()
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": sha}}
    async with (
        httpx.AsyncClient(base_url=first.url, timeout=30) as a,
        httpx.AsyncClient(base_url=second.url, timeout=30) as b,
    ):
        assert (await a.post("/graphql", json={"query": query, "extensions": extensions})).json()[
            "data"
        ]
        hit = (await b.post("/graphql", json={"extensions": extensions})).json()
    assert hit == {"data": {"health": {"status": "ok"}}}


def test_servers_stayed_healthy(two_servers: Any) -> None:
    for server in two_servers:
        assert server.process.poll() is None
        assert "Traceback" not in server.log(), server.log()
