"""Brute-force defence: failed logins per account and per address, counted in PostgreSQL,
expiring with time, cleared by admins."""

from __future__ import annotations

import asyncio
import json

import httpx

from gql_api.config import AuthSettings
from gql_api.db import Database
from tests.auth_support import LOGIN, execute, login, other_app, payload, scalar
from tests.conftest import TEST_PASSWORD, GraphQLClient, MadeUser, error_codes, insert_user

CLEAR = "mutation($e: String, $ip: String) { clearLoginAttempts(email: $e, ipAddress: $ip) }"


def test_defaults() -> None:
    defaults = AuthSettings()
    assert defaults.login_max_failures_per_account == 5
    assert defaults.login_max_failures_per_address == 50
    assert defaults.login_failure_window.total_seconds() == 15 * 60


async def test_per_account_limit_refuses_even_the_right_password(
    gql: GraphQLClient, db: Database, user: MadeUser
) -> None:
    for _ in range(5):
        assert error_codes(await login(gql, user.email, "wrong-password")) == ["UNAUTHENTICATED"]
    body = await login(gql, user.email, TEST_PASSWORD)
    assert error_codes(body) == ["RATE_LIMITED"]
    assert 890 <= body["errors"][0]["extensions"]["retryAfter"] <= 900
    # Counted per account: another account from the same address still signs in.
    other = await insert_user(db, email="other@example.com")
    payload(await login(gql, other.email, TEST_PASSWORD), "login")
    # Counted in PostgreSQL, so a second replica (another app) sees the same count.
    async with other_app(str(db.url), db) as replica:
        assert error_codes(await login(replica, user.email, TEST_PASSWORD)) == ["RATE_LIMITED"]


async def test_limits_expire_with_time(gql: GraphQLClient, db: Database, user: MadeUser) -> None:
    for _ in range(5):
        await login(gql, user.email, "wrong-password")
    assert error_codes(await login(gql, user.email, TEST_PASSWORD)) == ["RATE_LIMITED"]
    # Refused attempts are not kept: hammering does not push the release further away.
    assert await scalar(db, "SELECT count(*) FROM login_attempts") == 5
    await execute(db, "UPDATE login_attempts SET created_at = created_at - interval '10 minutes'")
    body = await login(gql, user.email, TEST_PASSWORD)
    assert 290 <= body["errors"][0]["extensions"]["retryAfter"] <= 300
    await execute(db, "UPDATE login_attempts SET created_at = created_at - interval '5 minutes'")
    payload(await login(gql, user.email, TEST_PASSWORD), "login")


async def test_per_address_limit(database_url: str, db: Database) -> None:
    async with other_app(database_url, db, auth={"login_max_failures_per_address": 3}) as gql:
        for n in range(3):
            assert error_codes(await login(gql, f"n{n}@example.com", "x-password")) == [
                "UNAUTHENTICATED"
            ]
        real = await insert_user(db, email="real@example.com")
        body = await login(gql, real.email, TEST_PASSWORD)
        assert error_codes(body) == ["RATE_LIMITED"]
        assert body["errors"][0]["extensions"]["retryAfter"] > 0
    # Another address is not limited.
    async with other_app(
        database_url, db, client=("192.0.2.10", 5555), auth={"login_max_failures_per_address": 3}
    ) as gql:
        payload(await login(gql, real.email, TEST_PASSWORD), "login")


def _aliased(email: str, passwords: list[str]) -> str:
    fields = " ".join(
        f'a{n}: login(input: {{email: "{email}", password: "{pw}"}}) {{ accessToken }}'
        for n, pw in enumerate(passwords)
    )
    return f"mutation {{ {fields} }}"


async def test_aliased_logins_in_one_document_are_refused_before_any_guess(
    gql: GraphQLClient, db: Database, user: MadeUser
) -> None:
    # At most one password check per document (graphql.limits EXPENSIVE_FIELDS): several aliased
    # logins are refused before any resolver runs, so they neither guess nor count.
    for passwords in ([TEST_PASSWORD] * 3, [f"guess-{n}-x" for n in range(6)]):
        body = await gql(_aliased(user.email, passwords))
        assert error_codes(body) == ["TOO_MANY_EXPENSIVE_FIELDS"]
        assert body.get("data") is None
    assert await scalar(db, "SELECT count(*) FROM login_attempts") == 0
    assert await scalar(db, "SELECT login_count FROM users") == 0
    # One login per document still counts each guess.
    body = await gql(_aliased(user.email, ["guess-single-x"]))
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert await scalar(db, "SELECT count(*) FROM login_attempts WHERE NOT succeeded") == 1


async def test_concurrent_guesses_are_counted_exactly(
    gql: GraphQLClient, db: Database, user: MadeUser
) -> None:
    bodies = await asyncio.gather(*(login(gql, user.email, f"guess-{n}-guess") for n in range(12)))
    codes = sorted(error_codes(body)[0] for body in bodies)
    assert codes == ["RATE_LIMITED"] * 7 + ["UNAUTHENTICATED"] * 5
    assert (
        await scalar(db, "SELECT count(*) FROM audit_logs WHERE action = 'auth.login_failed'") == 5
    )


async def test_admin_clears_limits(
    gql: GraphQLClient, db: Database, user: MadeUser, admin_token: str, user_token: str
) -> None:
    for _ in range(5):
        await login(gql, user.email, "wrong-password")
    assert error_codes(await login(gql, user.email, TEST_PASSWORD)) == ["RATE_LIMITED"]
    assert error_codes(await gql(CLEAR, {"e": user.email}, token=user_token)) == ["FORBIDDEN"]
    assert error_codes(await gql(CLEAR, {}, token=admin_token)) == ["BAD_USER_INPUT"]
    assert error_codes(await gql(CLEAR, {"ip": "not-an-ip"}, token=admin_token)) == [
        "BAD_USER_INPUT"
    ]
    body = await gql(CLEAR, {"e": user.email.upper()}, token=admin_token)
    assert body == {"data": {"clearLoginAttempts": 5}}
    payload(await login(gql, user.email, TEST_PASSWORD), "login")
    # By address as well.
    await login(gql, "x@example.com", "wrong-password")
    body = await gql(CLEAR, {"ip": "127.0.0.1"}, token=admin_token)
    assert body["data"]["clearLoginAttempts"] >= 1
    assert (
        await scalar(
            db, "SELECT count(*) FROM audit_logs WHERE action = 'auth.login_attempts_cleared'"
        )
        == 2
    )


async def test_a_login_sent_over_get_neither_signs_in_nor_counts(
    client: httpx.AsyncClient, db: Database, user: MadeUser
) -> None:
    """A page on another site can make a browser send GETs: they must not lock an account."""
    for password in ("wrong-password", TEST_PASSWORD):
        variables = {"input": {"email": user.email, "password": password}}
        response = await client.get(
            "/graphql", params={"query": LOGIN, "variables": json.dumps(variables)}
        )
        assert response.status_code in (400, 405), response.text
    assert await scalar(db, "SELECT count(*) FROM login_attempts") == 0
    assert await scalar(db, "SELECT count(*) FROM user_sessions") == 0
