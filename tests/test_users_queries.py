"""me, user(id) and users: permissions, lookups, and the constant SQL cost of a page."""

from __future__ import annotations

import uuid

import pytest

from gql_api.config import Settings
from gql_api.db import Database
from tests.conftest import GraphQLClient, MadeUser, error_codes, insert_user, session_token
from tests.users_support import count_statements, forget_session_checks, insert_many_users

USER_BY_ID = "query($id: ID!) { user(id: $id) { id email role status profile { bio } } }"
USERS = "{ users(first: 5) { totalCount edges { node { id } } } }"
AUDIT = "{ auditLogs(first: 5) { edges { node { id } } } }"


async def test_me_and_user_self(gql: GraphQLClient, user: MadeUser, user_token: str) -> None:
    body = await gql(USER_BY_ID, {"id": str(user.id)}, token=user_token)
    assert "errors" not in body, body
    assert body["data"]["user"]["email"] == user.email
    assert body["data"]["user"]["role"] == "USER"
    assert body["data"]["user"]["status"] == "ACTIVE"


async def test_user_other_is_forbidden_for_user_and_visible_to_admin(
    gql: GraphQLClient,
    db: Database,
    user: MadeUser,
    user_token: str,
    admin: MadeUser,
    admin_token: str,
) -> None:
    other = await insert_user(db, email="other@example.com")
    body = await gql(USER_BY_ID, {"id": str(other.id)}, token=user_token)
    assert error_codes(body) == ["FORBIDDEN"]
    assert body["data"] == {"user": None}
    # Existence is not revealed to non-admins: an unknown id is FORBIDDEN too.
    body = await gql(USER_BY_ID, {"id": str(uuid.uuid4())}, token=user_token)
    assert error_codes(body) == ["FORBIDDEN"]

    body = await gql(USER_BY_ID, {"id": str(other.id)}, token=admin_token)
    assert "errors" not in body, body
    assert body["data"]["user"]["email"] == "other@example.com"


async def test_user_anonymous_is_unauthenticated(gql: GraphQLClient, user: MadeUser) -> None:
    body = await gql(USER_BY_ID, {"id": str(user.id)})
    assert error_codes(body) == ["UNAUTHENTICATED"]


async def test_user_unknown_id_is_null_for_admin(gql: GraphQLClient, admin_token: str) -> None:
    body = await gql(USER_BY_ID, {"id": str(uuid.uuid4())}, token=admin_token)
    assert "errors" not in body, body
    assert body["data"] == {"user": None}


@pytest.mark.parametrize("bad", ["42", "not-a-uuid", ""])
async def test_user_malformed_id_is_bad_user_input(
    gql: GraphQLClient, admin_token: str, bad: str
) -> None:
    body = await gql(USER_BY_ID, {"id": bad}, token=admin_token)
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["fields"] == {"id": "not a valid ID"}


@pytest.mark.parametrize("query", [USERS, AUDIT])
async def test_admin_queries_permissions(
    gql: GraphQLClient, user_token: str, admin_token: str, query: str
) -> None:
    assert error_codes(await gql(query)) == ["UNAUTHENTICATED"]
    assert error_codes(await gql(query, token=user_token)) == ["FORBIDDEN"]
    body = await gql(query, token=admin_token)
    assert "errors" not in body, body


async def test_users_page_refuses_non_admins_in_every_shape(
    gql: GraphQLClient, db: Database, admin: MadeUser, user_token: str
) -> None:
    """A second angle on the admin check of `users`: with variables and nested fields (the
    planned executor's shape) and through a fragment (the generic executor's)."""
    for query, variables in (
        ("query($n: Int) { users(first: $n) { edges { node { email } } } }", {"n": 5}),
        ("{ users(first: 5) { totalCount } }", None),
        ("{ ...Q } fragment Q on Query { users { edges { node { email role } } } }", None),
    ):
        with count_statements(db) as statements:
            body = await gql(query, variables, token=user_token)
        assert error_codes(body) == ["FORBIDDEN"], (query, body)
        assert body["data"] is None
        assert admin.email not in str(body)
        assert len(statements) <= 1, statements  # at most the bearer token's lookup


PAGE_WITH_CHILDREN = """
query($n: Int!) {
  users(first: $n) {
    totalCount
    edges { cursor node { id email profile { bio } sessions { id } } }
  }
}
"""


async def _statements_for_page(
    gql: GraphQLClient, db: Database, token: str, n: int
) -> tuple[int, list[str]]:
    await forget_session_checks(db)  # the session check reads the database too
    with count_statements(db) as statements:
        body = await gql(PAGE_WITH_CHILDREN, {"n": n}, token=token)
    assert "errors" not in body, body
    assert len(body["data"]["users"]["edges"]) == n
    return body["data"]["users"]["totalCount"], statements


async def test_page_costs_the_same_statements_for_1_and_100_rows(
    gql: GraphQLClient, db: Database, settings: Settings, admin: MadeUser
) -> None:
    await insert_many_users(db, 150, sessions_each=2)
    token = await session_token(db, settings, admin)
    total, one = await _statements_for_page(gql, db, token, 1)
    assert total == 151
    _total, hundred = await _statements_for_page(gql, db, token, 100)
    # auth lookup + page (its total from user_counts in the same statement) + profiles + sessions
    assert len(one) == len(hundred) == 4, hundred
    # Without totalCount, the count is not run.
    await forget_session_checks(db)
    with count_statements(db) as statements:
        body = await gql("{ users(first: 3) { edges { node { id } } } }", token=token)
    assert "errors" not in body
    assert len(statements) == 2


LOGIN_WITH_SESSIONS = """
mutation($i: LoginInput!) { login(input: $i) { user { id sessions { id } } session { id } } }
"""
REGISTER_WITH_SESSIONS = """
mutation($i: RegisterInput!) { register(input: $i) { user { id sessions { id } } } }
"""


async def test_sessions_of_another_user_are_for_admins_only(
    gql: GraphQLClient, db: Database, admin_token: str, user: MadeUser, user_token: str
) -> None:
    # A user reading itself sees its sessions.
    body = await gql("{ me { sessions { current } } }", token=user_token)
    assert body["data"]["me"]["sessions"] == [{"current": True}]
    # Signed in as `user`, logging in as `other` hands back a User that is not the viewer: its
    # sessions are refused (the login itself still happens).
    other = await insert_user(db, email="other@example.com")
    credentials = {"i": {"email": other.email, "password": other.password}}
    body = await gql(LOGIN_WITH_SESSIONS, credentials, token=user_token)
    assert error_codes(body) == ["FORBIDDEN"], body
    assert body["errors"][0]["path"] == ["login", "user", "sessions"]
    # LoginPayload.user is nullable (null when a second factor is required): the error stops there.
    assert body["data"]["login"]["user"] is None
    # An admin reads the sessions of `other`, including the one that login created.
    body = await gql(
        "query($id: ID!) { user(id: $id) { sessions { id } } }",
        {"id": str(other.id)},
        token=admin_token,
    )
    assert "errors" not in body, body
    assert len(body["data"]["user"]["sessions"]) == 1


async def test_a_signed_in_user_cannot_read_the_sessions_of_an_account_it_registers(
    gql: GraphQLClient, user_token: str, admin_token: str
) -> None:
    variables = {
        "i": {
            "email": "fresh@example.com",
            "password": "tangerine-Velvet-42-orbit",
            "firstName": "Fresh",
            "lastName": "Account",
        }
    }
    body = await gql(REGISTER_WITH_SESSIONS, variables, token=user_token)
    assert error_codes(body) == ["FORBIDDEN"], body
    assert body["errors"][0]["path"] == ["register", "user", "sessions"]
    # An admin may read anyone's sessions, so the same request by an admin shows them.
    variables["i"]["email"] = "fresh2@example.com"
    body = await gql(REGISTER_WITH_SESSIONS, variables, token=admin_token)
    assert "errors" not in body, body
    assert len(body["data"]["register"]["user"]["sessions"]) == 1
