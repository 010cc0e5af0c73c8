"""updateMe and the admin mutations: permissions, validation, effects, and one audit entry
per mutation written with the change (actor, target, changed fields, address, user agent)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text

from gql_api.config import Settings
from gql_api.db import Database
from tests.conftest import (
    GraphQLClient,
    MadeUser,
    error_codes,
    insert_user,
    session_token,
)

UPDATE_ME = """
mutation($input: UpdateMeInput!) {
  updateMe(input: $input) {
    id firstName lastName
    profile { bio avatarUrl phone timezone locale preferences }
  }
}
"""
CREATE = """
mutation($input: CreateUserInput!) {
  createUser(input: $input) {
    id email firstName lastName role status emailVerified emailVerifiedAt
    profile { bio timezone locale preferences }
  }
}
"""
UPDATE = """
mutation($id: ID!, $input: UpdateUserInput!) {
  updateUser(id: $id, input: $input) { id firstName lastName role status emailVerified }
}
"""
DELETE = "mutation($id: ID!) { deleteUser(id: $id) { deletedUserId } }"
UA = {"User-Agent": "tests/1.0"}


async def audit_rows(db: Database, action: str | None = None) -> list[dict[str, Any]]:
    query = "SELECT * FROM audit_logs"
    if action:
        query += " WHERE action = :action"
    async with db.engine.connect() as conn:
        rows = await conn.execute(text(query + " ORDER BY created_at"), {"action": action})
        return [dict(r) for r in rows.mappings().all()]


async def user_row(db: Database, user_id: Any) -> dict[str, Any] | None:
    async with db.engine.connect() as conn:
        row = (
            (await conn.execute(text("SELECT * FROM users WHERE id = :id"), {"id": user_id}))
            .mappings()
            .one_or_none()
        )
    return dict(row) if row else None


def new_user_input(**overrides: Any) -> dict[str, Any]:
    return {
        "email": "New.Person@Example.com",
        "password": "a sufficiently long passphrase",
        "firstName": "New",
        "lastName": "Person",
        **overrides,
    }


# --- updateMe ----------------------------------------------------------------------------------


async def test_update_me_partial_update_and_audit(
    gql: GraphQLClient, db: Database, user: MadeUser, user_token: str
) -> None:
    body = await gql(
        UPDATE_ME,
        {
            "input": {
                "firstName": "  Ursula ",
                "profile": {
                    "bio": "Hello",
                    "timezone": "Europe/Paris",
                    "locale": "fr-FR",
                    "avatarUrl": "https://cdn.example.com/u.png",
                    "phone": "+33 1 23 45 67 89",
                    "preferences": {"theme": "dark"},
                },
            }
        },
        token=user_token,
        headers=UA,
    )
    assert "errors" not in body, body
    me = body["data"]["updateMe"]
    assert me["firstName"] == "Ursula" and me["lastName"] == "User"
    assert me["profile"] == {
        "bio": "Hello",
        "avatarUrl": "https://cdn.example.com/u.png",
        "phone": "+33 1 23 45 67 89",
        "timezone": "Europe/Paris",
        "locale": "fr-FR",
        "preferences": {"theme": "dark"},
    }

    # Only the given fields change; null clears a profile field.
    body = await gql(
        UPDATE_ME, {"input": {"profile": {"bio": None, "locale": "de"}}}, token=user_token
    )
    assert "errors" not in body, body
    profile = body["data"]["updateMe"]["profile"]
    assert profile["bio"] is None and profile["locale"] == "de"
    assert profile["timezone"] == "Europe/Paris" and profile["preferences"] == {"theme": "dark"}
    assert body["data"]["updateMe"]["firstName"] == "Ursula"

    first, second = await audit_rows(db, "user.profile_updated")
    assert first["actor_id"] == first["target_id"] == user.id
    assert first["target_type"] == "user"
    assert str(first["ip_address"]) == "127.0.0.1" and first["user_agent"] == "tests/1.0"
    assert first["request_id"]
    assert first["changes"]["first_name"] == {"old": "Uma", "new": "Ursula"}
    assert first["changes"]["profile.timezone"] == {"old": None, "new": "Europe/Paris"}
    assert second["changes"] == {
        "profile.bio": {"old": "Hello", "new": None},
        "profile.locale": {"old": "fr-FR", "new": "de"},
    }


async def test_update_me_creates_a_missing_profile(
    gql: GraphQLClient, db: Database, settings: Settings
) -> None:
    bare = await insert_user(db, email="bare@example.com", with_profile=False)
    token = await session_token(db, settings, bare)
    body = await gql(UPDATE_ME, {"input": {"profile": {"timezone": "UTC"}}}, token=token)
    assert "errors" not in body, body
    assert body["data"]["updateMe"]["profile"]["timezone"] == "UTC"


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"firstName": ""}, "firstName"),
        ({"firstName": None}, "firstName"),
        ({"lastName": "x" * 101}, "lastName"),
        ({"profile": {"timezone": "Mars/Olympus"}}, "profile.timezone"),
        ({"profile": {"timezone": "europe/paris"}}, "profile.timezone"),
        ({"profile": {"locale": "en_US"}}, "profile.locale"),
        ({"profile": {"locale": "x" * 36}}, "profile.locale"),
        ({"profile": {"avatarUrl": "javascript:alert(1)"}}, "profile.avatarUrl"),
        ({"profile": {"avatarUrl": "ftp://example.com/a.png"}}, "profile.avatarUrl"),
        ({"profile": {"avatarUrl": "https://" + "a" * 2050 + ".com"}}, "profile.avatarUrl"),
        ({"profile": {"phone": "call me"}}, "profile.phone"),
        ({"profile": {"phone": "1" * 33}}, "profile.phone"),
        ({"profile": {"bio": "b" * 2001}}, "profile.bio"),
        ({"profile": {"bio": "nul\x00"}}, "profile.bio"),
        ({"profile": {"preferences": [1, 2]}}, "profile.preferences"),
        ({"profile": {"preferences": {"k": "v" * 9000}}}, "profile.preferences"),
    ],
)
async def test_update_me_validation(
    gql: GraphQLClient, db: Database, user_token: str, given: dict[str, Any], field: str
) -> None:
    body = await gql(UPDATE_ME, {"input": given}, token=user_token)
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert field in body["errors"][0]["extensions"]["fields"]
    assert await audit_rows(db) == []


async def test_update_me_reports_every_bad_field(gql: GraphQLClient, user_token: str) -> None:
    body = await gql(
        UPDATE_ME,
        {"input": {"lastName": " ", "profile": {"timezone": "Nowhere", "locale": "??"}}},
        token=user_token,
    )
    assert set(body["errors"][0]["extensions"]["fields"]) == {
        "lastName",
        "profile.timezone",
        "profile.locale",
    }


async def test_update_me_anonymous(gql: GraphQLClient) -> None:
    body = await gql(UPDATE_ME, {"input": {"firstName": "X"}})
    assert error_codes(body) == ["UNAUTHENTICATED"]


# --- createUser --------------------------------------------------------------------------------


async def test_create_user_with_profile_and_audit(
    gql: GraphQLClient, db: Database, admin: MadeUser, admin_token: str
) -> None:
    variables = {
        "input": new_user_input(
            role="ADMIN",
            emailVerified=True,
            profile={"bio": "Hi", "timezone": "Asia/Tokyo", "locale": "ja-JP"},
        )
    }
    body = await gql(CREATE, variables, token=admin_token, headers=UA)
    assert "errors" not in body, body
    made = body["data"]["createUser"]
    assert made["email"] == "new.person@example.com"
    assert made["role"] == "ADMIN" and made["status"] == "ACTIVE"
    assert made["emailVerified"] is True and made["emailVerifiedAt"]
    assert made["profile"] == {
        "bio": "Hi",
        "timezone": "Asia/Tokyo",
        "locale": "ja-JP",
        "preferences": {},
    }
    row = await user_row(db, uuid.UUID(made["id"]))
    assert row is not None and row["password_hash"].startswith("$2")

    (entry,) = await audit_rows(db, "user.created")
    assert entry["actor_id"] == admin.id and entry["target_id"] == uuid.UUID(made["id"])
    assert entry["user_agent"] == "tests/1.0" and str(entry["ip_address"]) == "127.0.0.1"
    assert entry["changes"]["email"] == {"old": None, "new": "new.person@example.com"}
    assert entry["changes"]["role"] == {"old": None, "new": "admin"}
    assert entry["changes"]["profile.timezone"] == {"old": None, "new": "Asia/Tokyo"}
    assert entry["changes"]["password"] == "[changed]"
    assert "a sufficiently long passphrase" not in str(entry["changes"])
    assert row["password_hash"] not in str(entry["changes"])

    # The new user can be read with the new profile through the normal paths.
    body = await gql(
        "query($id: ID!) { user(id: $id) { profile { timezone } } }",
        {"id": made["id"]},
        token=admin_token,
    )
    assert body["data"]["user"]["profile"]["timezone"] == "Asia/Tokyo"


async def test_create_user_without_profile_input_has_empty_profile(
    gql: GraphQLClient, admin_token: str
) -> None:
    body = await gql(CREATE, {"input": new_user_input()}, token=admin_token)
    assert "errors" not in body, body
    made = body["data"]["createUser"]
    assert made["role"] == "USER" and made["emailVerified"] is False
    assert made["profile"] == {"bio": None, "timezone": None, "locale": None, "preferences": {}}


async def test_create_user_duplicate_email_is_conflict(
    gql: GraphQLClient, db: Database, user: MadeUser, admin_token: str
) -> None:
    body = await gql(CREATE, {"input": new_user_input(email="USER@example.com")}, token=admin_token)
    assert error_codes(body) == ["CONFLICT"]
    assert body["errors"][0]["extensions"]["fields"] == {"email": "is already registered"}
    assert await audit_rows(db, "user.created") == []


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"password": "short"}, "password"),
        ({"password": "password123"}, "password"),
        ({"firstName": ""}, "firstName"),
        ({"profile": {"timezone": "PST"}}, "profile.timezone"),
    ],
)
async def test_create_user_validation(
    gql: GraphQLClient, db: Database, admin_token: str, given: dict[str, Any], field: str
) -> None:
    body = await gql(CREATE, {"input": new_user_input(**given)}, token=admin_token)
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert field in body["errors"][0]["extensions"]["fields"]
    # Nothing was written: the admin is still the only user, with the only profile.
    async with db.engine.connect() as conn:
        emails = (await conn.execute(text("SELECT email FROM users"))).scalars().all()
        profiles = (await conn.execute(text("SELECT count(*) FROM user_profiles"))).scalar_one()
    assert emails == ["admin@example.com"] and profiles == 1
    assert await audit_rows(db, "user.created") == []


# --- updateUser --------------------------------------------------------------------------------


async def test_update_user_fields_and_audit(
    gql: GraphQLClient, db: Database, admin: MadeUser, admin_token: str, user: MadeUser
) -> None:
    body = await gql(
        UPDATE,
        {
            "id": str(user.id),
            "input": {"lastName": "Renamed", "role": "ADMIN", "emailVerified": True},
        },
        token=admin_token,
        headers=UA,
    )
    assert "errors" not in body, body
    assert body["data"]["updateUser"] == {
        "id": str(user.id),
        "firstName": "Uma",
        "lastName": "Renamed",
        "role": "ADMIN",
        "status": "ACTIVE",
        "emailVerified": True,
    }
    row = await user_row(db, user.id)
    assert row is not None and row["email_verified_at"] is not None
    (entry,) = await audit_rows(db, "user.updated")
    assert entry["actor_id"] == admin.id and entry["target_id"] == user.id
    assert entry["changes"] == {
        "last_name": {"old": "User", "new": "Renamed"},
        "role": {"old": "user", "new": "admin"},
        "email_verified": {"old": False, "new": True},
    }
    # Unverifying clears the timestamp.
    body = await gql(
        UPDATE, {"id": str(user.id), "input": {"emailVerified": False}}, token=admin_token
    )
    assert "errors" not in body, body
    row = await user_row(db, user.id)
    assert row is not None and row["email_verified_at"] is None


async def test_deactivating_revokes_sessions(
    gql: GraphQLClient, db: Database, admin_token: str, user: MadeUser, user_token: str
) -> None:
    assert "errors" not in await gql("{ me { id } }", token=user_token)
    body = await gql(
        UPDATE, {"id": str(user.id), "input": {"status": "INACTIVE"}}, token=admin_token
    )
    assert "errors" not in body, body
    assert body["data"]["updateUser"]["status"] == "INACTIVE"
    async with db.engine.connect() as conn:
        live = (
            await conn.execute(
                text(
                    "SELECT count(*) FROM user_sessions WHERE user_id = :id AND revoked_at IS NULL"
                ),
                {"id": user.id},
            )
        ).scalar_one()
    assert live == 0
    assert error_codes(await gql("{ me { id } }", token=user_token)) == ["UNAUTHENTICATED"]
    (entry,) = await audit_rows(db, "user.updated")
    assert entry["changes"] == {"status": {"old": "active", "new": "inactive"}}


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"firstName": None}, "firstName"),
        ({"role": None}, "role"),
        ({"status": None}, "status"),
        ({"emailVerified": None}, "emailVerified"),
        ({"lastName": "\x00"}, "lastName"),
    ],
)
async def test_update_user_validation(
    gql: GraphQLClient, admin_token: str, user: MadeUser, given: dict[str, Any], field: str
) -> None:
    body = await gql(UPDATE, {"id": str(user.id), "input": given}, token=admin_token)
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert field in body["errors"][0]["extensions"]["fields"]


async def test_update_and_delete_unknown_or_malformed_id(
    gql: GraphQLClient, admin_token: str
) -> None:
    unknown = str(uuid.uuid4())
    body = await gql(UPDATE, {"id": unknown, "input": {"firstName": "X"}}, token=admin_token)
    assert error_codes(body) == ["NOT_FOUND"]
    assert error_codes(await gql(DELETE, {"id": unknown}, token=admin_token)) == ["NOT_FOUND"]
    body = await gql(UPDATE, {"id": "nope", "input": {"firstName": "X"}}, token=admin_token)
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert error_codes(await gql(DELETE, {"id": "nope"}, token=admin_token)) == ["BAD_USER_INPUT"]


# --- deleteUser --------------------------------------------------------------------------------


async def test_delete_user_takes_profile_and_sessions_and_keeps_audit(
    gql: GraphQLClient,
    db: Database,
    admin: MadeUser,
    admin_token: str,
    user: MadeUser,
    user_token: str,
) -> None:
    # An audit entry naming the user exists before the deletion.
    await gql(UPDATE_ME, {"input": {"firstName": "Gone"}}, token=user_token)
    body = await gql(DELETE, {"id": str(user.id)}, token=admin_token, headers=UA)
    assert "errors" not in body, body
    assert body["data"]["deleteUser"] == {"deletedUserId": str(user.id)}
    assert await user_row(db, user.id) is None
    async with db.engine.connect() as conn:
        for table in ("user_profiles", "user_sessions"):
            count = (
                await conn.execute(
                    text(f"SELECT count(*) FROM {table} WHERE user_id = :id"), {"id": user.id}
                )
            ).scalar_one()
            assert count == 0, table
    entries = await audit_rows(db)
    assert [e["action"] for e in entries] == ["user.profile_updated", "user.deleted"]
    assert all(e["target_id"] == user.id for e in entries)
    assert entries[1]["actor_id"] == admin.id
    assert entries[1]["changes"]["email"] == {"old": "user@example.com", "new": None}
    # The entries stay readable through auditLogs.
    body = await gql(
        "query($t: ID!) { auditLogs(filter: {targetId: $t}) { totalCount } }",
        {"t": str(user.id)},
        token=admin_token,
    )
    assert body["data"]["auditLogs"]["totalCount"] == 2
    assert error_codes(await gql("{ me { id } }", token=user_token)) == ["UNAUTHENTICATED"]


# --- permissions -------------------------------------------------------------------------------

ADMIN_MUTATIONS = [
    (CREATE, lambda target: {"input": new_user_input()}),
    (UPDATE, lambda target: {"id": target, "input": {"firstName": "X"}}),
    (DELETE, lambda target: {"id": target}),
]


@pytest.mark.parametrize(("document", "variables"), ADMIN_MUTATIONS)
async def test_admin_mutations_refuse_anonymous_users_and_themselves(
    gql: GraphQLClient,
    db: Database,
    user: MadeUser,
    user_token: str,
    document: str,
    variables: Any,
) -> None:
    other = await insert_user(db, email="other@example.com")
    for target in (str(other.id), str(user.id)):
        assert error_codes(await gql(document, variables(target))) == ["UNAUTHENTICATED"]
        assert error_codes(await gql(document, variables(target), token=user_token)) == [
            "FORBIDDEN"
        ]
    assert await audit_rows(db) == []
    assert await user_row(db, other.id) is not None


async def test_user_can_update_only_itself(
    gql: GraphQLClient, db: Database, settings: Settings, user: MadeUser, user_token: str
) -> None:
    other = await insert_user(db, email="other@example.com", first_name="Otto")
    other_token = await session_token(db, settings, other)
    body = await gql(UPDATE_ME, {"input": {"firstName": "Changed"}}, token=user_token)
    assert "errors" not in body, body
    assert body["data"]["updateMe"]["id"] == str(user.id)
    assert body["data"]["updateMe"]["firstName"] == "Changed"
    assert (await user_row(db, user.id) or {})["first_name"] == "Changed"
    assert (await user_row(db, other.id) or {})["first_name"] == "Otto"
    body = await gql("{ me { firstName } }", token=other_token)
    assert body["data"]["me"]["firstName"] == "Otto"
