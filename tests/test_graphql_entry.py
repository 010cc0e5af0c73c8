"""One GraphQL entry (gql_api.web.graphql_http) for every request, whichever executor answers
it: planned queries and the rest pass the same middlewares and get the same HTTP treatment.

That a response passed the CORS layer is seen on it: Starlette's CORSMiddleware with explicit
origins names ``Origin`` in ``Vary`` on every response it passes.
"""

from __future__ import annotations

import httpx
from sqlalchemy import text

from gql_api.db import Database
from tests.conftest import insert_user, make_settings, session_token
from tests.hardening_support import app_client
from tests.users_support import count_statements

ME = "{ me { id email role } }"
PAGE = "{ users(first: 3) { totalCount edges { node { id profile { bio } sessions { id } } } } }"


def passed_cors(response: httpx.Response) -> bool:
    """Whether the response went through the CORS layer."""
    vary = {part.strip().lower() for part in response.headers.get("vary", "").split(",")}
    return "origin" in vary


async def _tokens(db: Database) -> tuple[str, str]:
    settings = make_settings(db.url)
    admin = await insert_user(db, email="admin@example.com", role="admin")
    user = await insert_user(db, email="user@example.com")
    return await session_token(db, settings, admin), await session_token(db, settings, user)


async def test_planned_and_generic_documents_take_the_same_entry(db: Database) -> None:
    admin, _ = await _tokens(db)
    headers = {"Authorization": f"Bearer {admin}"}
    async with app_client(db) as http:
        for query in (ME, PAGE):
            response = await http.post("/graphql", json={"query": query}, headers=headers)
            assert response.status_code == 200 and "errors" not in response.json()
            assert response.headers["content-type"] == "application/json"
            assert response.headers["x-request-id"]
            assert passed_cors(response), response.headers
        fragment = "{ me { ...F } } fragment F on User { id }"
        response = await http.post("/graphql", json={"query": fragment}, headers=headers)
        assert response.json()["data"]["me"]["id"]
        assert passed_cors(response), response.headers


async def test_a_refused_token_is_looked_up_once_and_answered_alike(db: Database) -> None:
    _, user = await _tokens(db)
    async with db.engine.begin() as conn:
        await conn.execute(text("UPDATE user_sessions SET revoked_at = now()"))
    async with app_client(db) as http:
        with count_statements(db) as statements:
            response = await http.post(
                "/graphql", json={"query": ME}, headers={"Authorization": f"Bearer {user}"}
            )
        body = response.json()
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert passed_cors(response), response.headers
        # One context per request: the failed session lookup is not made twice.
        assert len(statements) == 1, statements
        # Another planned document with the same revoked token: refused alike.
        response = await http.post(
            "/graphql", json={"query": PAGE}, headers={"Authorization": f"Bearer {user}"}
        )
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert passed_cors(response), response.headers


async def test_browsers_and_media_types_get_one_answer_whatever_executes(db: Database) -> None:
    admin, _ = await _tokens(db)
    auth = {"Authorization": f"Bearer {admin}"}
    async with app_client(db, server={"cors_origins": ["https://app.example.com"]}) as http:
        response = await http.post(
            "/graphql",
            json={"query": ME},
            headers={**auth, "Origin": "https://app.example.com"},
        )
        assert response.headers["access-control-allow-origin"] == "https://app.example.com"
        assert passed_cors(response), response.headers

        # A planned document and one the generic executor runs: the same media type and body.
        accept = {**auth, "Accept": "application/graphql-response+json"}
        lane = await http.post("/graphql", json={"query": ME}, headers=accept)
        assert passed_cors(lane), lane.headers
        fragment = "{ me { ...F } } fragment F on User { id email role }"
        full = await http.post("/graphql", json={"query": fragment}, headers=accept)
        assert passed_cors(full), full.headers

        # Other media types, and persisted queries, take the same entry.
        other = await http.post(
            "/graphql", json={"query": ME}, headers={**auth, "Accept": "text/html"}
        )
        assert passed_cors(other), other.headers

        persisted = await http.post(
            "/graphql",
            json={"query": ME, "extensions": {"persistedQuery": {"version": 1}}},
            headers=auth,
        )
        assert passed_cors(persisted), persisted.headers
    assert lane.status_code == full.status_code == 200
    assert lane.headers["content-type"] == "application/graphql-response+json; charset=utf-8"
    assert lane.headers["content-type"] == full.headers["content-type"]
    assert lane.json() == full.json()
    assert lane.json()["data"]["me"]["role"] == "ADMIN" and "errors" not in lane.json()


async def test_other_methods_and_a_trailing_slash_are_answered_as_routes_are(
    db: Database,
) -> None:
    admin, _ = await _tokens(db)
    async with app_client(db) as http:
        with count_statements(db) as statements:
            for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):
                response = await http.request(
                    method, "/graphql", headers={"Authorization": f"Bearer {admin}"}
                )
                assert response.status_code == 405, method
                assert response.headers["allow"] == "GET, POST"
                assert response.json() == {"detail": "Method Not Allowed"}
                assert response.headers["x-request-id"]
        assert statements == []  # refused before the caller is looked up
        moved = await http.post("/graphql/", json={"query": ME})
        assert moved.status_code == 307
        assert moved.headers["location"] == "http://testserver/graphql"
