"""The planned-query lane (gql_api.graphql.fast_lane): which requests it answers, and that a
request it declines gets exactly the full app's answer.

Which lane answered is seen on the response: the full app's CORS layer, which sits behind the
lane, names ``Origin`` in ``Vary`` on every response it passes (Starlette's CORSMiddleware with
explicit origins); the lane answers only requests without an ``Origin`` and adds no ``Vary``.
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


def full_app_answered(response: httpx.Response) -> bool:
    """Whether the full app (FastAPI, Strawberry's view) answered, not the lane."""
    vary = {part.strip().lower() for part in response.headers.get("vary", "").split(",")}
    return "origin" in vary


async def _tokens(db: Database) -> tuple[str, str]:
    settings = make_settings(db.url)
    admin = await insert_user(db, email="admin@example.com", role="admin")
    user = await insert_user(db, email="user@example.com")
    return await session_token(db, settings, admin), await session_token(db, settings, user)


async def test_planned_queries_skip_the_full_app_and_the_rest_reach_it(db: Database) -> None:
    admin, _ = await _tokens(db)
    headers = {"Authorization": f"Bearer {admin}"}
    async with app_client(db) as http:
        for query in (ME, PAGE):
            response = await http.post("/graphql", json={"query": query}, headers=headers)
            assert response.status_code == 200 and "errors" not in response.json()
            assert response.headers["content-type"] == "application/json"
            assert response.headers["x-request-id"]
            assert not full_app_answered(response), response.headers
        fragment = "{ me { ...F } } fragment F on User { id }"
        response = await http.post("/graphql", json={"query": fragment}, headers=headers)
        assert response.json()["data"]["me"]["id"]
        assert full_app_answered(response), response.headers


async def test_a_declined_request_gets_the_full_apps_answer_with_one_lookup(db: Database) -> None:
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
        assert full_app_answered(response), response.headers
        # The lane's context (with its failed session lookup) went on to the full app.
        assert len(statements) == 1, statements
        # Another planned document with the same revoked token: the full app refuses it too.
        response = await http.post(
            "/graphql", json={"query": PAGE}, headers={"Authorization": f"Bearer {user}"}
        )
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert full_app_answered(response), response.headers


async def test_browsers_and_other_media_types_go_to_the_full_app(db: Database) -> None:
    admin, _ = await _tokens(db)
    auth = {"Authorization": f"Bearer {admin}"}
    async with app_client(db, server={"cors_origins": ["https://app.example.com"]}) as http:
        response = await http.post(
            "/graphql",
            json={"query": ME},
            headers={**auth, "Origin": "https://app.example.com"},
        )
        assert response.headers["access-control-allow-origin"] == "https://app.example.com"
        assert full_app_answered(response), response.headers

        # Both lanes negotiate the GraphQL-over-HTTP media type alike.
        accept = {**auth, "Accept": "application/graphql-response+json"}
        lane = await http.post("/graphql", json={"query": ME}, headers=accept)
        assert not full_app_answered(lane), lane.headers
        fragment = "{ me { ...F } } fragment F on User { id email role }"
        full = await http.post("/graphql", json={"query": fragment}, headers=accept)
        assert full_app_answered(full), full.headers  # fragments are the full app's

        # Other media types are negotiated by the full app.
        other = await http.post(
            "/graphql", json={"query": ME}, headers={**auth, "Accept": "text/html"}
        )
        assert full_app_answered(other), other.headers

        # A persisted-query extension always goes to the full app.
        persisted = await http.post(
            "/graphql",
            json={"query": ME, "extensions": {"persistedQuery": {"version": 1}}},
            headers=auth,
        )
        assert full_app_answered(persisted), persisted.headers
    assert lane.status_code == full.status_code == 200
    assert lane.headers["content-type"] == "application/graphql-response+json; charset=utf-8"
    assert lane.headers["content-type"] == full.headers["content-type"]
    assert lane.json() == full.json()
    assert lane.json()["data"]["me"]["role"] == "ADMIN" and "errors" not in lane.json()
