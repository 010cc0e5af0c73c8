"""Managing sessions: logoutAll, revokeSession (own; admins any), revokeUserSessions (admins)."""

from __future__ import annotations

import uuid
from typing import Any

from gql_api.db import Database
from gql_api.models import UserStatus
from gql_api.repositories import sessions as session_repo
from gql_api.repositories import users as user_repo
from tests.auth_support import ME, audit_actions, login, payload, scalar
from tests.conftest import TEST_PASSWORD, GraphQLClient, MadeUser, error_codes, insert_user

REVOKE = "mutation($id: ID!) { revokeSession(id: $id) }"
REVOKE_USER = "mutation($id: ID!) { revokeUserSessions(userId: $id) }"


async def _sign_ins(gql: GraphQLClient, user: MadeUser, n: int) -> list[dict[str, Any]]:
    return [payload(await login(gql, user.email, TEST_PASSWORD), "login") for _ in range(n)]


async def _alive(gql: GraphQLClient, result: dict[str, Any]) -> bool:
    return (await gql(ME, token=result["accessToken"])).get("data", {}).get("me") is not None


async def test_logout_all(gql: GraphQLClient, db: Database, user: MadeUser) -> None:
    a, b, c = await _sign_ins(gql, user, 3)
    body = await gql("mutation { logoutAll }", token=a["accessToken"])
    assert body == {"data": {"logoutAll": 3}}
    assert [await _alive(gql, r) for r in (a, b, c)] == [False, False, False]
    assert "auth.logout_all" in await audit_actions(db)


async def test_logout_all_keeping_the_current_session(gql: GraphQLClient, user: MadeUser) -> None:
    a, b, c = await _sign_ins(gql, user, 3)
    body = await gql("mutation { logoutAll(keepCurrent: true) }", token=b["accessToken"])
    assert body == {"data": {"logoutAll": 2}}
    assert [await _alive(gql, r) for r in (a, b, c)] == [False, True, False]
    me = await gql("{ me { sessions { id current } } }", token=b["accessToken"])
    assert me["data"]["me"]["sessions"] == [{"id": b["session"]["id"], "current": True}]


async def test_revoke_own_session(gql: GraphQLClient, db: Database, user: MadeUser) -> None:
    a, b = await _sign_ins(gql, user, 2)
    assert (await gql(REVOKE, {"id": b["session"]["id"]}, token=a["accessToken"]))["data"] == {
        "revokeSession": True
    }
    assert not await _alive(gql, b) and await _alive(gql, a)
    # Already revoked: nothing to do.
    assert (await gql(REVOKE, {"id": b["session"]["id"]}, token=a["accessToken"]))["data"] == {
        "revokeSession": False
    }
    assert (await audit_actions(db)).count("auth.session_revoked") == 1


async def test_cannot_revoke_someone_elses_session(
    gql: GraphQLClient, db: Database, user: MadeUser
) -> None:
    other = await insert_user(db, email="other@example.com")
    (mine,) = await _sign_ins(gql, user, 1)
    (theirs,) = await _sign_ins(gql, other, 1)
    body = await gql(REVOKE, {"id": theirs["session"]["id"]}, token=mine["accessToken"])
    assert error_codes(body) == ["NOT_FOUND"]  # not FORBIDDEN: ids cannot be probed
    assert await _alive(gql, theirs)
    body = await gql(REVOKE, {"id": str(uuid.uuid4())}, token=mine["accessToken"])
    assert error_codes(body) == ["NOT_FOUND"]
    assert error_codes(await gql(REVOKE, {"id": "nope"}, token=mine["accessToken"])) == [
        "BAD_USER_INPUT"
    ]
    assert error_codes(await gql(REVOKE, {"id": theirs["session"]["id"]})) == ["UNAUTHENTICATED"]


async def test_admin_revokes_any_session_and_all_of_a_user(
    gql: GraphQLClient, db: Database, user: MadeUser, admin_token: str
) -> None:
    a, b, c = await _sign_ins(gql, user, 3)
    body = await gql(REVOKE, {"id": a["session"]["id"]}, token=admin_token)
    assert body == {"data": {"revokeSession": True}}
    assert (
        await scalar(
            db, "SELECT revoked_reason FROM user_sessions WHERE id = :id", id=a["session"]["id"]
        )
        == "admin_revoked"
    )
    body = await gql(REVOKE_USER, {"id": str(user.id)}, token=admin_token)
    assert body == {"data": {"revokeUserSessions": 2}}
    assert [await _alive(gql, r) for r in (a, b, c)] == [False, False, False]
    assert error_codes(await gql(REVOKE_USER, {"id": str(uuid.uuid4())}, token=admin_token)) == [
        "NOT_FOUND"
    ]


async def test_revoke_user_sessions_is_for_admins(
    gql: GraphQLClient, user: MadeUser, user_token: str
) -> None:
    body = await gql(REVOKE_USER, {"id": str(user.id)}, token=user_token)
    assert error_codes(body) == ["FORBIDDEN"]
    assert error_codes(await gql(REVOKE_USER, {"id": str(user.id)})) == ["UNAUTHENTICATED"]


async def test_set_status_inactive_revokes_sessions_in_one_transaction(
    gql: GraphQLClient, db: Database, user: MadeUser
) -> None:
    """Repository level: the users-API engineer calls this from updateUser."""
    a, b = await _sign_ins(gql, user, 2)
    async with db.session() as session:
        async with session.begin():
            await user_repo.set_status(session, user_id=user.id, status=UserStatus.INACTIVE)
            await session.rollback()  # nothing happens unless the caller commits...
    assert await _alive(gql, a)
    async with db.transaction() as session:  # ...and both happen when it does
        await user_repo.set_status(session, user_id=user.id, status=UserStatus.INACTIVE)
    assert await scalar(db, "SELECT count(*) FROM user_sessions WHERE revoked_at IS NULL") == 0
    assert not await _alive(gql, a) and not await _alive(gql, b)


async def test_revoke_all_for_user_except_one(
    gql: GraphQLClient, db: Database, user: MadeUser
) -> None:
    a, b, c = await _sign_ins(gql, user, 3)
    async with db.transaction() as session:
        count = await session_repo.revoke_all_for_user(
            session, user_id=user.id, reason="test", except_session_id=uuid.UUID(c["session"]["id"])
        )
    assert count == 2
    assert [await _alive(gql, r) for r in (a, b, c)] == [False, False, True]


async def test_signing_in_beyond_the_session_limit_ends_the_least_recently_used(
    database_url: str, db: Database, user: MadeUser
) -> None:
    from tests.auth_support import execute, other_app

    async with other_app(database_url, db, auth={"max_sessions_per_user": 2}) as gql:
        a, b = await _sign_ins(gql, user, 2)
        # a was used more recently than b (a refresh marks it used).
        await execute(
            db,
            "UPDATE user_sessions SET last_used_at = now() - interval '1 hour' WHERE id = :id",
            id=b["session"]["id"],
        )
        (c,) = await _sign_ins(gql, user, 1)
        assert [await _alive(gql, r) for r in (a, b, c)] == [True, False, True]
    assert (
        await scalar(
            db, "SELECT revoked_reason FROM user_sessions WHERE id = :id", id=b["session"]["id"]
        )
        == "session_limit"
    )
