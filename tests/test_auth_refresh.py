"""refreshToken: rotation, the grace window for concurrent refreshes, reuse detection, the
absolute lifetime and the idle timeout."""

from __future__ import annotations

import asyncio
from typing import Any

from gql_api.auth.tokens import hash_token
from gql_api.db import Database
from tests.auth_support import (
    ME,
    REFRESH,
    audit_actions,
    execute,
    login,
    other_app,
    payload,
    scalar,
)
from tests.conftest import TEST_PASSWORD, GraphQLClient, MadeUser, error_codes


async def _sign_in(gql: GraphQLClient, user: MadeUser) -> dict[str, Any]:
    return payload(await login(gql, user.email, TEST_PASSWORD), "login")


async def _refresh(gql: GraphQLClient, token: str) -> dict[str, Any]:
    return await gql(REFRESH, {"t": token})


async def test_refresh_rotates_and_stores_only_hashes(
    gql: GraphQLClient, db: Database, user: MadeUser
) -> None:
    first = await _sign_in(gql, user)
    second = payload(await _refresh(gql, first["refreshToken"]), "refreshToken")
    assert second["refreshToken"] != first["refreshToken"]
    assert len(second["refreshToken"]) >= 43
    assert second["accessToken"] != first["accessToken"]
    assert second["session"]["id"] == first["session"]["id"]
    assert (await gql(ME, token=second["accessToken"]))["data"]["me"]["email"] == user.email
    row = await scalar(db, "SELECT token_hash || ' ' || previous_token_hash FROM user_sessions")
    assert row == f"{hash_token(second['refreshToken'])} {hash_token(first['refreshToken'])}"
    third = payload(await _refresh(gql, second["refreshToken"]), "refreshToken")
    assert third["refreshToken"] not in (first["refreshToken"], second["refreshToken"])
    assert await audit_actions(db) == ["auth.login", "auth.refresh", "auth.refresh"]


async def test_concurrent_refreshes_inside_the_grace_window_both_succeed(
    gql: GraphQLClient, db: Database, user: MadeUser
) -> None:
    first = await _sign_in(gql, user)
    bodies = await asyncio.gather(*(_refresh(gql, first["refreshToken"]) for _ in range(3)))
    results = [payload(body, "refreshToken") for body in bodies]
    # Every caller holds the one current refresh token (see gql_api.auth.sessions).
    assert len({r["refreshToken"] for r in results}) == 1
    current = results[0]["refreshToken"]
    assert await scalar(db, "SELECT token_hash FROM user_sessions") == hash_token(current)
    for result in results:
        assert (await gql(ME, token=result["accessToken"]))["data"]["me"] is not None
    payload(await _refresh(gql, current), "refreshToken")  # and it keeps working


async def test_reuse_after_the_grace_window_revokes_the_session(
    database_url: str, db: Database, user: MadeUser
) -> None:
    async with other_app(database_url, db, auth={"refresh_reuse_grace": "0s"}) as gql:
        first = await _sign_in(gql, user)
        second = payload(await _refresh(gql, first["refreshToken"]), "refreshToken")
        replay = await _refresh(gql, first["refreshToken"])
        assert error_codes(replay) == ["UNAUTHENTICATED"]
        assert "reused" in replay["errors"][0]["message"]
        # The whole session is gone: the legitimate holder's tokens stop working too.
        assert error_codes(await gql(ME, token=second["accessToken"])) == ["UNAUTHENTICATED"]
        assert error_codes(await _refresh(gql, second["refreshToken"])) == ["UNAUTHENTICATED"]
    assert await scalar(db, "SELECT revoked_reason FROM user_sessions") == "refresh_reuse"
    assert (
        await scalar(
            db,
            "SELECT count(*) FROM audit_logs WHERE action = 'auth.refresh_reuse_detected' "
            "AND target_id = :uid",
            uid=user.id,
        )
        == 1
    )


async def test_reuse_with_the_default_grace_window(
    gql: GraphQLClient, db: Database, user: MadeUser
) -> None:
    """The default window is 10 s: move the rotation back in time instead of waiting."""
    first = await _sign_in(gql, user)
    payload(await _refresh(gql, first["refreshToken"]), "refreshToken")
    payload(await _refresh(gql, first["refreshToken"]), "refreshToken")  # inside: fine
    await execute(db, "UPDATE user_sessions SET rotated_at = now() - interval '11 seconds'")
    assert error_codes(await _refresh(gql, first["refreshToken"])) == ["UNAUTHENTICATED"]
    assert await scalar(db, "SELECT revoked_reason FROM user_sessions") == "refresh_reuse"


async def test_unknown_refresh_token(gql: GraphQLClient, user: MadeUser) -> None:
    await _sign_in(gql, user)
    assert error_codes(await _refresh(gql, "x" * 43)) == ["UNAUTHENTICATED"]
    assert error_codes(await _refresh(gql, "bad\x00token")) == ["BAD_USER_INPUT"]


async def test_absolute_lifetime_is_not_extended_by_refreshing(
    gql: GraphQLClient, db: Database, user: MadeUser
) -> None:
    first = await _sign_in(gql, user)
    expires = await scalar(db, "SELECT expires_at FROM user_sessions")
    second = payload(await _refresh(gql, first["refreshToken"]), "refreshToken")
    assert await scalar(db, "SELECT expires_at FROM user_sessions") == expires
    await execute(db, "UPDATE user_sessions SET expires_at = now() - interval '1 second'")
    assert error_codes(await _refresh(gql, second["refreshToken"])) == ["UNAUTHENTICATED"]
    assert error_codes(await gql(ME, token=second["accessToken"])) == ["UNAUTHENTICATED"]


async def test_idle_timeout_is_checked_at_refresh(
    gql: GraphQLClient, db: Database, user: MadeUser
) -> None:
    first = await _sign_in(gql, user)
    await execute(db, "UPDATE user_sessions SET last_used_at = now() - interval '6 days'")
    second = payload(await _refresh(gql, first["refreshToken"]), "refreshToken")
    # Refreshing marks the session used.
    assert (
        await scalar(db, "SELECT last_used_at > now() - interval '1 minute' FROM user_sessions")
        is True
    )
    await execute(db, "UPDATE user_sessions SET last_used_at = now() - interval '8 days'")
    body = await _refresh(gql, second["refreshToken"])
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert "inactivity" in body["errors"][0]["message"]
    assert await scalar(db, "SELECT revoked_reason FROM user_sessions") == "idle_timeout"


async def test_idle_timeout_is_configurable(
    database_url: str, db: Database, user: MadeUser
) -> None:
    async with other_app(database_url, db, auth={"session_idle_timeout": "1h"}) as gql:
        first = await _sign_in(gql, user)
        await execute(db, "UPDATE user_sessions SET last_used_at = now() - interval '61 minutes'")
        assert error_codes(await _refresh(gql, first["refreshToken"])) == ["UNAUTHENTICATED"]
