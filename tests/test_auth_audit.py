"""Auth events in audit_logs: who, where, which request; never a secret; only when the change
committed. And the per-request token check is one SQL statement."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text

from gql_api.db import Database
from tests.auth_support import ME, REFRESH, login, payload, register
from tests.conftest import TEST_PASSWORD, GraphQLClient, MadeUser, error_codes
from tests.users_support import count_statements, forget_session_checks


async def _audit_rows(db: Database) -> list[dict[str, Any]]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT action, actor_id::text, target_id::text, changes, host(ip_address) AS ip, "
                "user_agent, request_id FROM audit_logs ORDER BY created_at"
            )
        )
        return [dict(row._mapping) for row in rows]


async def test_events_carry_request_address_and_agent(
    gql: GraphQLClient, db: Database, user: MadeUser
) -> None:
    headers = {"X-Request-ID": "req-login-1", "User-Agent": "audit-test/2"}
    body = await gql(
        "mutation($i: LoginInput!) { login(input: $i) { refreshToken } }",
        {"i": {"email": user.email, "password": TEST_PASSWORD}},
        headers=headers,
    )
    refresh_token = payload(body, "login")["refreshToken"]
    await gql(REFRESH, {"t": refresh_token}, headers={"X-Request-ID": "req-refresh-1"})
    rows = await _audit_rows(db)
    assert [r["action"] for r in rows] == ["auth.login", "auth.refresh"]
    login_row = rows[0]
    assert login_row["actor_id"] == login_row["target_id"] == str(user.id)
    assert login_row["ip"] == "127.0.0.1"
    assert login_row["user_agent"] == "audit-test/2"
    assert login_row["request_id"] == "req-login-1"
    assert rows[1]["request_id"] == "req-refresh-1"


async def test_no_secret_reaches_the_audit_log(gql: GraphQLClient, db: Database) -> None:
    password = "unique-Secret-pass-99"
    result = payload(await register(gql, "secretive@example.com", password), "register")
    await login(gql, "secretive@example.com", "wrong-Secret-pass-98")
    await gql(REFRESH, {"t": result["refreshToken"]})
    dumped = json.dumps(await _audit_rows(db), default=str)
    for secret in (password, "wrong-Secret-pass-98", result["refreshToken"], result["accessToken"]):
        assert secret not in dumped


async def test_nothing_is_audited_when_the_change_fails(gql: GraphQLClient, db: Database) -> None:
    payload(await register(gql, "once@example.com"), "register")
    assert error_codes(await register(gql, "once@example.com")) == ["CONFLICT"]
    rows = await _audit_rows(db)
    assert [r["action"] for r in rows] == ["auth.register"]


async def test_each_authenticated_request_is_one_indexed_lookup(
    gql: GraphQLClient, db: Database, user_token: str
) -> None:
    await gql(ME, token=user_token)  # warm the pool
    await forget_session_checks(db)  # else the check is remembered: no statement at all
    with count_statements(db) as statements:
        body = await gql(ME, token=user_token)
    assert body["data"]["me"] is not None
    assert len(statements) == 1, statements
    assert "user_sessions" in statements[0] and "users" in statements[0]
    # The plan starts from the session's primary key.
    async with db.engine.connect() as conn:
        await conn.execute(text("SET enable_seqscan = off"))  # tiny tables: ask for the index
        plan = "\n".join(
            row[0]
            for row in await conn.execute(
                text(
                    "EXPLAIN SELECT users.id FROM users JOIN user_sessions "
                    "ON user_sessions.user_id = users.id WHERE user_sessions.id = "
                    "'00000000-0000-0000-0000-000000000000'"
                )
            )
        )
    assert "user_sessions_pkey" in plan, plan
