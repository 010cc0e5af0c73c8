"""The last active admin rule (also under concurrent requests) and the atomic createUser."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gql_api.auth.current import Viewer
from gql_api.auth.events import RequestMeta
from gql_api.config import Settings
from gql_api.db import Database
from gql_api.models import User
from gql_api.users import admin as admin_service
from tests.conftest import (
    WAITING_ON_LOCKS,
    GraphQLClient,
    MadeUser,
    error_codes,
    insert_user,
    session_token,
)

UPDATE = """
mutation($id: ID!, $input: UpdateUserInput!) { updateUser(id: $id, input: $input) { role status } }
"""
DELETE = "mutation($id: ID!) { deleteUser(id: $id) { deletedUserId } }"
CREATE = "mutation($input: CreateUserInput!) { createUser(input: $input) { id } }"


async def scalar(db: Database, sql: str, **params: Any) -> Any:
    async with db.engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar_one()


async def active_admins(db: Database) -> int:
    return int(
        await scalar(db, "SELECT count(*) FROM users WHERE role = 'admin' AND status = 'active'")
    )


@pytest.mark.parametrize(
    ("document", "variables"),
    [
        (UPDATE, {"input": {"role": "USER"}}),
        (UPDATE, {"input": {"status": "INACTIVE"}}),
        (UPDATE, {"input": {"role": "USER", "status": "INACTIVE"}}),
        (DELETE, {}),
    ],
)
async def test_last_active_admin_cannot_be_demoted_deactivated_or_deleted(
    gql: GraphQLClient,
    db: Database,
    admin: MadeUser,
    admin_token: str,
    document: str,
    variables: dict[str, Any],
) -> None:
    # An inactive admin does not count as another admin.
    await insert_user(db, email="dormant@example.com", role="admin", status="inactive")
    body = await gql(document, {**variables, "id": str(admin.id)}, token=admin_token)
    assert error_codes(body) == ["CONFLICT"], body
    assert "last active admin" in body["errors"][0]["message"]
    assert await active_admins(db) == 1
    assert await scalar(db, "SELECT count(*) FROM audit_logs") == 0


async def test_last_admin_may_still_edit_its_names(
    gql: GraphQLClient, db: Database, admin: MadeUser, admin_token: str
) -> None:
    body = await gql(
        UPDATE,
        {"id": str(admin.id), "input": {"firstName": "Still", "role": "ADMIN"}},
        token=admin_token,
    )
    assert "errors" not in body, body
    assert body["data"]["updateUser"] == {"role": "ADMIN", "status": "ACTIVE"}
    assert await scalar(db, "SELECT first_name FROM users WHERE id = :id", id=admin.id) == "Still"
    assert await active_admins(db) == 1


async def test_an_admin_may_step_down_when_another_remains(
    gql: GraphQLClient, db: Database, admin: MadeUser, admin_token: str
) -> None:
    await insert_user(db, email="second@example.com", role="admin")
    body = await gql(UPDATE, {"id": str(admin.id), "input": {"role": "USER"}}, token=admin_token)
    assert "errors" not in body, body
    assert await active_admins(db) == 1
    # Its token still names a session, but it is no longer an admin.
    body = await gql(UPDATE, {"id": str(admin.id), "input": {"role": "ADMIN"}}, token=admin_token)
    assert error_codes(body) == ["FORBIDDEN"]


@pytest.mark.parametrize("document", [UPDATE, DELETE])
async def test_two_admins_removing_each_other_at_once_leave_one(
    gql: GraphQLClient, db: Database, settings: Settings, document: str
) -> None:
    for _round in range(5):
        await db.engine.dispose()  # fresh connections: no luck from a warm pool
        async with db.engine.begin() as conn:
            await conn.execute(text("TRUNCATE users, audit_logs CASCADE"))
        one = await insert_user(db, email="one@example.com", role="admin")
        two = await insert_user(db, email="two@example.com", role="admin")
        tokens = [await session_token(db, settings, u) for u in (one, two)]
        variables = [
            {"id": str(target.id), "input": {"status": "INACTIVE"}}
            if document == UPDATE
            else {"id": str(target.id)}
            for target in (two, one)
        ]
        bodies = await asyncio.gather(
            gql(document, variables[0], token=tokens[0]),
            gql(document, variables[1], token=tokens[1]),
        )
        codes = sorted(tuple(error_codes(b)) for b in bodies)
        assert await active_admins(db) == 1
        # One wins. The other is refused: signed out already (its user was deactivated or
        # deleted before its request was authenticated), or no longer an admin by the time it
        # holds the lock (FORBIDDEN).
        assert codes[0] == (), bodies
        assert codes[1] in {("FORBIDDEN",), ("UNAUTHENTICATED",)}, bodies
        assert await scalar(db, "SELECT count(*) FROM audit_logs") == 1


@pytest.mark.parametrize("crosswise", [True, False])
async def test_concurrent_demotions_race_at_the_lock(
    gql: GraphQLClient, db: Database, settings: Settings, database_url: str, crosswise: bool
) -> None:
    """Both requests are held where they lock the admins (the rows are locked from outside), so
    both are past authentication and have read nothing yet: they really race (without the hold,
    one request may simply finish first)."""
    one = await insert_user(db, email="one@example.com", role="admin")
    two = await insert_user(db, email="two@example.com", role="admin")
    tokens = [await session_token(db, settings, u) for u in (one, two)]
    # crosswise: each demotes the other; otherwise each steps down itself.
    targets = [two.id, one.id] if crosswise else [one.id, two.id]
    holder = await asyncpg.connect(database_url)
    try:
        hold = holder.transaction()
        await hold.start()
        await holder.execute(
            "SELECT id FROM users WHERE role = 'admin' AND status = 'active' ORDER BY id FOR UPDATE"
        )
        requests = [
            asyncio.create_task(
                gql(UPDATE, {"id": str(target), "input": {"role": "USER"}}, token=token)
            )
            for target, token in zip(targets, tokens, strict=True)
        ]
        deadline = asyncio.get_running_loop().time() + 30
        while await holder.fetchval(WAITING_ON_LOCKS) < 2:
            assert not any(r.done() for r in requests), [r.result() for r in requests if r.done()]
            assert asyncio.get_running_loop().time() < deadline, "both requests at the lock"
            await asyncio.sleep(0.02)
        await hold.commit()
        bodies = await asyncio.wait_for(asyncio.gather(*requests), timeout=30)
    finally:
        await holder.close()
    codes = sorted(tuple(error_codes(b)) for b in bodies)
    # One wins; the other finds itself no longer an admin, or the last one.
    assert codes == [(), ("FORBIDDEN",) if crosswise else ("CONFLICT",)], bodies
    assert await active_admins(db) == 1


# --- atomic create -----------------------------------------------------------------------------


async def _viewer(db: Database, user: MadeUser) -> Viewer:
    async with db.session() as session:
        row = await session.get(User, user.id)
    assert row is not None
    return Viewer(user=row, session_id=None)


async def test_create_with_a_profile_the_database_rejects_leaves_no_user(
    db: Database, settings: Settings, admin: MadeUser
) -> None:
    actor = await _viewer(db, admin)
    new = admin_service.NewUser(
        email="atomic@example.com",
        password="a sufficiently long passphrase",
        first_name="Atomic",
        last_name="Create",
        # Past validation (the service trusts its caller), the column (varchar 32) refuses it.
        profile={"phone": "1" * 40},
    )
    with pytest.raises(DBAPIError):
        await admin_service.create_user(db, settings.auth, actor=actor, new=new, meta=RequestMeta())
    assert await scalar(db, "SELECT count(*) FROM users WHERE email = 'atomic@example.com'") == 0
    assert await scalar(db, "SELECT count(*) FROM user_profiles") == 1  # the admin's own
    assert await scalar(db, "SELECT count(*) FROM audit_logs") == 0


async def test_create_through_the_api_when_the_profile_write_fails(
    gql: GraphQLClient, db: Database, admin_token: str
) -> None:
    # The database refuses the profile's values (not the empty profile every new user gets) with
    # an error no rule expects (a trigger's own): the user row written before them must go too.
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE FUNCTION test_refuse_profiles() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'profile storage failed'; END $$"
            )
        )
        await conn.execute(
            text(
                "CREATE TRIGGER test_refuse_profiles BEFORE INSERT OR UPDATE ON user_profiles "
                "FOR EACH ROW WHEN (NEW.bio IS NOT NULL) EXECUTE FUNCTION test_refuse_profiles()"
            )
        )
    try:
        body = await gql(
            CREATE,
            {
                "input": {
                    "email": "atomic@example.com",
                    "password": "a sufficiently long passphrase",
                    "firstName": "Atomic",
                    "lastName": "Create",
                    "profile": {"bio": "hello"},
                }
            },
            token=admin_token,
        )
    finally:
        async with db.engine.begin() as conn:
            await conn.execute(text("DROP TRIGGER test_refuse_profiles ON user_profiles"))
            await conn.execute(text("DROP FUNCTION test_refuse_profiles()"))
    assert error_codes(body) == ["INTERNAL_SERVER_ERROR"]
    assert "profile storage failed" not in str(body)
    assert await scalar(db, "SELECT count(*) FROM users WHERE email = 'atomic@example.com'") == 0
    assert await scalar(db, "SELECT count(*) FROM audit_logs") == 0
