"""No password or token hash is reachable through the schema.

The schema is read the way a client reads it (introspection over HTTP) and every name is
checked. Some names contain "password" or "token" without exposing a stored secret; they are
allowed explicitly, each for a reason:

- ``AuthPayload.accessToken``, ``.refreshToken``, ``.tokenType``: tokens issued to the caller in
  this response (only their SHA-256 is stored), and the word "Bearer"; the same on
  ``LoginPayload``, which ``login`` answers.
- ``MfaChallenge.challengeToken`` and the argument ``challengeToken``: the single-use token of a
  sign-in's second step, issued in this response (only a keyed hash is stored).
- ``User.passwordChangedAt``: a timestamp.
- arguments and input fields ``password``, ``newPassword``, ``currentPassword``, ``token``,
  ``refreshToken``: what the client sends; nothing is read back through them.
- Mutation fields ``refreshToken``, ``changePassword``, ``requestPasswordReset``,
  ``resetPassword``: operations, not data.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import text

from gql_api.db import Database
from tests.conftest import GraphQLClient, MadeUser

SECRET_WORDS = re.compile(r"password|hash|token", re.IGNORECASE)
ALLOWED_OUTPUT_FIELDS = {
    ("AuthPayload", "accessToken"),
    ("AuthPayload", "refreshToken"),
    ("AuthPayload", "tokenType"),
    ("LoginPayload", "accessToken"),
    ("LoginPayload", "refreshToken"),
    ("LoginPayload", "tokenType"),
    ("MfaChallenge", "challengeToken"),
    ("User", "passwordChangedAt"),
}
ALLOWED_INPUT_NAMES = {
    "password",
    "newPassword",
    "currentPassword",
    "token",
    "refreshToken",
    "challengeToken",
}
ALLOWED_OPERATIONS = {"refreshToken", "changePassword", "requestPasswordReset", "resetPassword"}
FORBIDDEN_NAMES = {"passwordhash", "tokenhash", "previoustokenhash", "password_hash", "token_hash"}

INTROSPECTION = """
{
  __schema {
    mutationType { name }
    types {
      name kind
      fields(includeDeprecated: true) { name args { name } }
      inputFields { name }
    }
  }
}
"""


async def _types(gql: GraphQLClient) -> tuple[list[dict[str, Any]], str | None]:
    body = await gql(INTROSPECTION)
    assert "errors" not in body, body
    schema = body["data"]["__schema"]
    mutation = schema["mutationType"]["name"] if schema["mutationType"] else None
    return [t for t in schema["types"] if not t["name"].startswith("__")], mutation


async def test_no_field_or_input_names_a_stored_secret(gql: GraphQLClient) -> None:
    types, mutation = await _types(gql)
    offending: list[str] = []
    every_name: list[str] = []
    for gql_type in types:
        for field in gql_type["fields"] or []:
            every_name.append(field["name"])
            where = f"{gql_type['name']}.{field['name']}"
            if SECRET_WORDS.search(field["name"]):
                allowed = (
                    field["name"] in ALLOWED_OPERATIONS
                    if gql_type["name"] == mutation
                    else (gql_type["name"], field["name"]) in ALLOWED_OUTPUT_FIELDS
                )
                if not allowed:
                    offending.append(where)
            for arg in field["args"]:
                every_name.append(arg["name"])
                if SECRET_WORDS.search(arg["name"]) and arg["name"] not in ALLOWED_INPUT_NAMES:
                    offending.append(f"{where}({arg['name']})")
        for field in gql_type["inputFields"] or []:
            every_name.append(field["name"])
            if SECRET_WORDS.search(field["name"]) and field["name"] not in ALLOWED_INPUT_NAMES:
                offending.append(f"{gql_type['name']}.{field['name']}")
    assert offending == []
    assert not any("hash" in name.lower() for name in every_name)
    assert not {name.lower() for name in every_name} & FORBIDDEN_NAMES


async def test_the_user_types_list_exactly_the_issue_fields(gql: GraphQLClient) -> None:
    types, _ = await _types(gql)
    by_name = {t["name"]: {f["name"] for f in t["fields"] or []} for t in types}
    assert by_name["User"] == {
        "id",
        "email",
        "firstName",
        "lastName",
        "role",
        "status",
        "emailVerified",
        "emailVerifiedAt",
        "passwordChangedAt",
        "lastLoginAt",
        "loginCount",
        "createdAt",
        "updatedAt",
        "profile",
        "sessions",
        "mfa",
    }
    assert by_name["Profile"] == {
        "bio",
        "avatarUrl",
        "phone",
        "timezone",
        "locale",
        "preferences",
        "updatedAt",
    }
    assert "tokenHash" not in by_name["Session"] and "previousTokenHash" not in by_name["Session"]


async def test_no_stored_hash_appears_in_a_full_response(
    gql: GraphQLClient,
    db: Database,
    admin: MadeUser,
    admin_token: str,
    user: MadeUser,
    user_token: str,
) -> None:
    everything = """
    { users(first: 10) { edges { node {
        id email firstName lastName role status emailVerified emailVerifiedAt passwordChangedAt
        lastLoginAt loginCount createdAt updatedAt
        profile { bio avatarUrl phone timezone locale preferences updatedAt }
        sessions { id deviceInfo ipAddress userAgent createdAt expiresAt lastUsedAt current }
    } } } }
    """
    body = await gql(everything, token=admin_token)
    assert "errors" not in body, body
    async with db.engine.connect() as conn:
        secrets = (
            (
                await conn.execute(
                    text(
                        "SELECT password_hash FROM users"
                        " UNION ALL SELECT token_hash FROM user_sessions"
                    )
                )
            )
            .scalars()
            .all()
        )
    assert len(secrets) == 4
    dumped = str(body)
    assert not [s for s in secrets if s in dumped]
