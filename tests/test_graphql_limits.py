"""Depth, aliases, tokens and cost: each just under and just over its limit, refused before any
resolver runs, with a stable code."""

from __future__ import annotations

import httpx
import pytest

from gql_api.db import Database
from tests.conftest import GraphQLClient, MadeUser, error_codes
from tests.hardening_support import app_client, post
from tests.users_support import count_statements, forget_session_checks

SESSIONS_SELECTION = "sessions { id userAgent ipAddress expiresAt createdAt }"


def heavy_users_query() -> str:
    # users: 1 + n * (edges 1 + (node 1 + (sessions 1 + 10 (session cap) * 5 fields))) = 1 + 53n
    return (
        f"query($n: Int) {{ users(first: $n) {{ edges {{ node {{ {SESSIONS_SELECTION} }} }} }} }}"
    )


async def test_cost_just_under_and_just_over(
    gql: GraphQLClient, admin_token: str, db: Database
) -> None:
    under = await gql(heavy_users_query(), {"n": 94}, token=admin_token)  # 1 + 53 * 94 = 4983
    assert "errors" not in under, under
    assert len(under["data"]["users"]["edges"]) == 1  # the admin, with its session
    assert len(under["data"]["users"]["edges"][0]["node"]["sessions"]) == 1
    await forget_session_checks(db)  # so that the check below reads the database
    with count_statements(db) as statements:
        over = await gql(heavy_users_query(), {"n": 95}, token=admin_token)  # 5036
    assert error_codes(over) == ["QUERY_TOO_COMPLEX"]
    assert over["errors"][0]["extensions"]["cost"] == 5036
    assert over["errors"][0]["extensions"]["maxCost"] == 5000
    assert "data" in over and over["data"] is None
    # Only the bearer token's session lookup ran: no resolver touched the database.
    assert len(statements) == 1, statements


async def test_a_cost_kept_for_some_variables_is_not_used_for_others(
    gql: GraphQLClient, admin_token: str
) -> None:
    """Costs are kept per set of variables (gql_api.graphql.engine.limits): each set is priced
    as its own, in any order, however often it comes, and variables that do not coerce are
    still refused (with the message of the caller's policy)."""
    sends = [94, 95, 94, 95, 94, "many", 95]
    for n in sends:
        body = await gql(heavy_users_query(), {"n": n}, token=admin_token)
        if n == 94:
            assert "errors" not in body, body
        elif n == 95:
            assert error_codes(body) == ["QUERY_TOO_COMPLEX"]
            assert body["errors"][0]["extensions"]["cost"] == 5036
        else:
            assert error_codes(body) == ["BAD_USER_INPUT"], body
    for extra in range(12):  # more sets than are kept: priced each time, still right
        body = await gql(heavy_users_query(), {"n": 95, "unused": extra}, token=admin_token)
        assert body["errors"][0]["extensions"]["cost"] == 5036


async def test_unbounded_connection_costs_the_maximum_page(
    gql: GraphQLClient, admin_token: str
) -> None:
    query = f"{{ users {{ edges {{ node {{ {SESSIONS_SELECTION} }} }} }} }}"  # 1 + 53 * 100
    body = await gql(query, token=admin_token)
    assert error_codes(body) == ["QUERY_TOO_COMPLEX"]
    assert body["errors"][0]["extensions"]["cost"] == 5301


TYPENAMED_USERS_QUERY = (
    "query($n: Int) { __typename users(first: $n) { __typename edges { __typename node {"
    " __typename sessions { __typename id userAgent ipAddress expiresAt createdAt } } } } }"
)


async def test_typename_is_free(gql: GraphQLClient, admin_token: str) -> None:
    # 17 cost under the limit: were each __typename worth 1, the 94 nodes alone would add 94.
    under = await gql(TYPENAMED_USERS_QUERY, {"n": 94}, token=admin_token)
    assert "errors" not in under, under
    assert under["data"]["users"]["edges"][0]["node"]["__typename"] == "User"
    over = await gql(TYPENAMED_USERS_QUERY, {"n": 95}, token=admin_token)
    assert error_codes(over) == ["QUERY_TOO_COMPLEX"]
    assert over["errors"][0]["extensions"]["cost"] == 5036  # as without any __typename


async def test_aliases_just_under_and_just_over(gql: GraphQLClient) -> None:
    def aliases(n: int) -> str:
        return "{ " + " ".join(f"a{i}: health {{ status }}" for i in range(n)) + " }"

    assert "errors" not in await gql(aliases(15))
    over = await gql(aliases(16))
    assert error_codes(over) == ["TOO_MANY_ALIASES"]
    assert over["errors"][0]["extensions"]["aliases"] == 16


async def test_tokens_just_under_and_just_over(client: httpx.AsyncClient) -> None:
    # 400 small operations of 5 tokens each ("query Qn { __typename }"): exactly 2,000 tokens.
    # (One selection of 2,000 repeated fields would trip graphql-core's own validation budget.)
    operations = [f"query Q{i} {{ __typename }}" for i in range(400)]

    async def run(document: str) -> dict[str, object]:
        response = await client.post("/graphql", json={"query": document, "operationName": "Q0"})
        body: dict[str, object] = response.json()
        return body

    assert "errors" not in await run(" ".join(operations))
    operations[-1] = "query Q399 { __typename __typename }"  # one token more
    over = await run(" ".join(operations))
    assert error_codes(over) == ["TOO_MANY_TOKENS"]


async def test_depth_just_under_and_just_over(db: Database, admin_token: str) -> None:
    async with app_client(db, graphql={"max_depth": 3}) as http:
        under = await post(http, "{ me { profile { bio } } }", token=admin_token)
        assert "errors" not in under, under
        over = await post(http, "{ users { edges { node { id } } } }", token=admin_token)
        assert [e["extensions"]["code"] for e in over["errors"]] == ["QUERY_TOO_DEEP"]
        assert over["errors"][0]["extensions"] == {
            "code": "QUERY_TOO_DEEP",
            "depth": 4,
            "maxDepth": 3,
        }


async def test_depth_limit_holds_for_queries_the_planned_executor_can_run(
    db: Database, admin: MadeUser, admin_token: str
) -> None:
    """Plain queries without fragments are answered by the planned executor: the limit must
    hold there exactly as in the generic one."""
    async with app_client(db, graphql={"max_depth": 2}) as http:
        assert "errors" not in await post(http, "{ me { id } }", token=admin_token)
        for query, variables in (
            ("{ me { profile { bio } } }", {}),
            ("query($id: ID!) { user(id: $id) { sessions { id } } }", {"id": str(admin.id)}),
        ):
            with count_statements(db) as statements:
                body = await post(http, query, variables, token=admin_token)
            assert error_codes(body) == ["QUERY_TOO_DEEP"], (query, body)
            assert body["errors"][0]["extensions"]["maxDepth"] == 2
            assert body["data"] is None
            assert len(statements) <= 1, statements  # at most the bearer token's lookup


async def test_default_depth_limit_is_ten(settings) -> None:  # type: ignore[no-untyped-def]
    assert settings.graphql.max_depth == 10
    assert settings.graphql.max_aliases == 15
    assert settings.graphql.max_tokens == 2000
    assert settings.graphql.max_cost == 5000


async def test_fragments_count_toward_depth_and_cost(
    gql: GraphQLClient, db: Database, admin_token: str
) -> None:
    async with app_client(db, graphql={"max_depth": 3}) as http:
        query = (
            "query { users { ...Page } } fragment Page on UserConnection { edges { node { id } } }"
        )
        body = await post(http, query, token=admin_token)
        assert [e["extensions"]["code"] for e in body["errors"]] == ["QUERY_TOO_DEEP"]
    # Cost: the heavy page of test_cost_just_under_and_just_over, its selections in fragments.
    fragments = (
        "query($n: Int) { users(first: $n) { ...Page } } "
        "fragment Page on UserConnection { edges { node { ...Sessions } } } "
        f"fragment Sessions on User {{ {SESSIONS_SELECTION} }}"
    )
    assert "errors" not in await gql(fragments, {"n": 94}, token=admin_token)
    over = await gql(fragments, {"n": 95}, token=admin_token)
    assert error_codes(over) == ["QUERY_TOO_COMPLEX"]
    assert over["errors"][0]["extensions"]["cost"] == 5036


async def test_repeated_directive_on_one_field_is_refused(gql: GraphQLClient) -> None:
    body = await gql("{ health @include(if: true) @include(if: true) { status } }")
    assert error_codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
    assert "include" in body["errors"][0]["message"]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("{ health { status ", "GRAPHQL_PARSE_FAILED"),
        ("{ nope }", "GRAPHQL_VALIDATION_FAILED"),
    ],
)
async def test_parse_and_validation_errors_have_codes(
    gql: GraphQLClient, query: str, code: str
) -> None:
    assert error_codes(await gql(query)) == [code]


async def test_variable_of_wrong_type_is_bad_user_input(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql",
        json={
            "query": "query($n: Int) { users(first: $n) { totalCount } }",
            "variables": {"n": "many"},
        },
    )
    assert response.status_code == 200
    assert [e["extensions"]["code"] for e in response.json()["errors"]] == ["BAD_USER_INPUT"]
