"""Introspection and field suggestions by mode and caller; masked unexpected errors."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from gql_api.db import Database
from tests.conftest import GraphQLClient, error_codes
from tests.hardening_support import app_client, post

INTROSPECTION = "{ __schema { queryType { name } } }"
TYPE_QUERY = '{ __type(name: "User") { name } }'


@pytest.mark.parametrize("query", [INTROSPECTION, TYPE_QUERY])
async def test_development_introspection_is_open(gql: GraphQLClient, query: str) -> None:
    body = await gql(query)
    assert "errors" not in body, body


async def test_production_introspection_only_for_admins(
    db: Database, user_token: str, admin_token: str
) -> None:
    async with app_client(db, env="production") as http:
        for token in (None, user_token):
            for query in (
                INTROSPECTION,
                TYPE_QUERY,
                f"query A {{ health {{ status }} }} query B {INTROSPECTION}",
            ):
                extra = {"operationName": "B"} if "query B" in query else {}
                body = await post(http, query, token=token, **extra)
                assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"], (
                    token,
                    query,
                )
        admin = await post(http, INTROSPECTION, token=admin_token)
        assert admin["data"]["__schema"]["queryType"]["name"] == "Query"
        # __typename is not introspection of the schema
        assert "errors" not in await post(http, "{ __typename }")


async def test_production_introspection_cannot_hide_in_fragments_aliases_or_get(
    db: Database, user_token: str
) -> None:
    """A second angle on the production rule: the same schema data asked for indirectly."""
    disguised = (
        "{ ...Q } fragment Q on Query { s: __schema { types { name } } }",
        '{ ... on Query { t: __type(name: "Query") { fields { name } } } }',
    )
    async with app_client(db, env="production") as http:
        for query in disguised:
            body = await post(http, query, token=user_token)
            assert error_codes(body) == ["FORBIDDEN"], (query, body)
            assert body.get("data") is None, body
        response = await http.get(
            "/graphql",
            params={"query": disguised[0]},
            headers={"Authorization": f"Bearer {user_token}"},
        )
        assert error_codes(response.json()) == ["FORBIDDEN"], response.text
        assert "types" not in response.text


async def test_production_hides_field_suggestions_from_non_admins(
    db: Database, user_token: str, admin_token: str
) -> None:
    async with app_client(db, env="production") as http:
        anonymous = await post(http, "{ healt { status } }")
        assert "Did you mean" not in anonymous["errors"][0]["message"]
        assert anonymous["errors"][0]["message"] == "Cannot query field 'healt' on type 'Query'."
        admin = await post(http, "{ healt { status } }", token=admin_token)
        assert "Did you mean 'health'?" in admin["errors"][0]["message"]


async def test_development_keeps_suggestions(gql: GraphQLClient) -> None:
    body = await gql("{ healt { status } }")
    assert "Did you mean 'health'?" in body["errors"][0]["message"]


async def test_production_graphiql_off_by_default(db: Database) -> None:
    async with app_client(db, env="production") as http:
        page = await http.get("/graphql", headers={"Accept": "text/html"})
        assert page.status_code == 404
    async with app_client(db, env="production", server={"graphiql": True}) as http:
        page = await http.get("/graphql", headers={"Accept": "text/html"})
        assert page.status_code == 200 and "graphiql" in page.text.lower()


async def test_unexpected_errors_are_masked_with_request_id(
    client: httpx.AsyncClient,
    user_token: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from gql_api.graphql.schema.context import Context

    def explode(self: Any) -> Any:
        raise RuntimeError("secret internal detail")

    # Both executors ask who is calling; the planned one then hands the request over.
    monkeypatch.setattr(Context, "current_viewer", explode)
    with caplog.at_level(logging.ERROR, logger="gql_api.errors"):
        response = await client.post(
            "/graphql",
            json={"query": "{ me { id } }"},
            headers={"Authorization": f"Bearer {user_token}", "X-Request-ID": "req-42"},
        )
    error = response.json()["errors"][0]
    assert error["message"] == "Internal server error"
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": "req-42"}
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text
    logged = "\n".join(r.getMessage() + str(r.exc_info) for r in caplog.records)
    assert "req-42" in logged and "secret internal detail" in logged


async def test_expected_errors_keep_message_and_code(gql: GraphQLClient, user_token: str) -> None:
    body = await gql("{ users { totalCount } }", token=user_token)
    assert error_codes(body) == ["FORBIDDEN"]
