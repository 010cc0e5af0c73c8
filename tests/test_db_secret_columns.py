"""Read paths select no secret column: the bearer lookup that every authenticated request runs,
pages of users and the relations the DataLoaders batch. Only the functions that check a password
or a token read its hash (and those run on login, refresh and password confirmation only)."""

from __future__ import annotations

import pytest

from gql_api.db import Database
from gql_api.models import SECRET_COLUMNS, USER_PUBLIC_COLUMNS
from tests.auth_support import ME
from tests.conftest import GraphQLClient, error_codes
from tests.users_support import count_statements, forget_session_checks, insert_many_users


def secrets_in(statement: str) -> list[str]:
    return sorted(name for name in SECRET_COLUMNS if name in statement)


def test_the_public_user_columns_hold_no_secret() -> None:
    names = {column.name for column in USER_PUBLIC_COLUMNS}
    assert not names & SECRET_COLUMNS
    assert {"id", "email", "role", "status", "created_at"} <= names


async def test_the_bearer_lookup_selects_no_password_hash(
    gql: GraphQLClient, db: Database, user_token: str
) -> None:
    await gql(ME, token=user_token)  # warm the pool
    await forget_session_checks(db)  # else the check is remembered: no statement at all
    with count_statements(db) as statements:
        body = await gql(ME, token=user_token)
    assert error_codes(body) == [] and body["data"]["me"]["email"], body
    assert len(statements) == 1, statements
    (lookup,) = statements
    assert "user_sessions" in lookup and "users.email" in lookup, lookup
    assert secrets_in(lookup) == [], lookup


PAGE = """
users(first: 5) {
  totalCount
  edges { node { id email role profile { bio } sessions { id createdAt } } }
}
"""


@pytest.mark.parametrize(
    "document",
    [
        "{ " + PAGE + " }",  # the planned executor's shape
        "{ ...Page } fragment Page on Query { " + PAGE + " }",  # the generic executor's
    ],
    ids=["planned", "generic"],
)
async def test_a_page_with_relations_selects_no_secret_column(
    gql: GraphQLClient, db: Database, admin_token: str, document: str
) -> None:
    await insert_many_users(db, 6, sessions_each=2)
    with count_statements(db) as statements:
        body = await gql(document, token=admin_token)
    assert error_codes(body) == [], body
    assert len(body["data"]["users"]["edges"]) == 5
    # bearer lookup + page (with its total) + profiles + sessions
    assert len(statements) == 4, statements
    assert {statement: secrets_in(statement) for statement in statements} == {
        statement: [] for statement in statements
    }
