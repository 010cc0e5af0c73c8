"""me, user(id) and users: permissions, lookups, and the constant SQL cost of a page."""

from __future__ import annotations

import uuid

import pytest

from gql_api.config import Settings
from gql_api.db import Database
from tests.conftest import GraphQLClient, MadeUser, error_codes, insert_user, session_token
from tests.users_support import count_statements, insert_many_users

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
    # auth lookup + page + count + profiles + sessions
    assert len(one) == len(hundred) == 5, hundred
    # Without totalCount, the count is not run.
    with count_statements(db) as statements:
        body = await gql("{ users(first: 3) { edges { node { id } } } }", token=token)
    assert "errors" not in body
    assert len(statements) == 2


async def test_sessions_of_listed_users_are_admin_only_data(
    gql: GraphQLClient, db: Database, admin_token: str, user: MadeUser, user_token: str
) -> None:
    # A user reading itself sees its sessions; the data of others is behind `users` (admin).
    body = await gql("{ me { sessions { current } } }", token=user_token)
    assert body["data"]["me"]["sessions"] == [{"current": True}]
