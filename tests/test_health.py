"""The public health query, /healthz and /readyz against a real PostgreSQL."""

from __future__ import annotations

import httpx

from gql_api import __version__
from gql_api.db import Database
from gql_api.web.app import create_app
from tests.conftest import GraphQLClient, make_settings


async def test_health_query_reports_database(gql: GraphQLClient) -> None:
    body = await gql("{ health { status database { ok latencyMs } version } }")
    assert "errors" not in body
    health = body["data"]["health"]
    assert health["status"] == "ok"
    assert health["database"]["ok"] is True
    assert 0 < health["database"]["latencyMs"] < 60_000
    assert health["version"] == __version__


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"


async def test_request_id_round_trip(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    generated = await client.get("/healthz")
    assert len(generated.headers["x-request-id"]) == 32


async def test_readyz_is_503_when_database_unreachable() -> None:
    # Port 1 on loopback: nothing listens there, so every connection is refused at once.
    settings = make_settings(
        "postgresql://postgres@127.0.0.1:1/nowhere", database={"connect_timeout": "2s"}
    )
    database = Database(settings.database, settings.database.url or "", None)
    app = create_app(settings, database)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert (await http.get("/healthz")).status_code == 200
            body = (
                await http.post("/graphql", json={"query": "{ health { status database { ok } } }"})
            ).json()
            assert body["data"]["health"] == {"status": "degraded", "database": {"ok": False}}
    await database.dispose()


async def test_readyz_is_503_when_migrations_pending(fresh_database) -> None:  # type: ignore[no-untyped-def]
    url = await fresh_database()
    settings = make_settings(url)
    database = Database(settings.database, url, None)
    app = create_app(settings, database)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["status"] == "migrations pending"
    await database.dispose()


async def test_me_is_null_when_anonymous_and_self_with_token(
    gql: GraphQLClient, user_token: str
) -> None:
    assert (await gql("{ me { id } }"))["data"] == {"me": None}
    body = await gql(
        "{ me { email role status profile { preferences } sessions { current } } }",
        token=user_token,
    )
    assert "errors" not in body, body
    assert body["data"]["me"]["email"] == "user@example.com"
    assert body["data"]["me"]["role"] == "USER"
    assert body["data"]["me"]["sessions"] == [{"current": True}]


async def test_bad_token_is_unauthenticated(gql: GraphQLClient) -> None:
    body = await gql("{ me { id } }", token="not-a-jwt")
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_started_app_tunes_the_cyclic_collector(db: Database) -> None:
    """On start the app freezes what it loaded and widens the collector's youngest generation
    (gql_api.web.lifespan: a users page spent 6-7% of its CPU in the collector)."""
    import gc

    from gql_api.web.lifespan import YOUNG_GENERATION
    from tests.hardening_support import app_client

    default = gc.get_threshold()
    gc.set_threshold(700, *default[1:])
    try:
        async with app_client(db):
            assert gc.get_threshold()[0] == YOUNG_GENERATION
            assert gc.get_freeze_count() > 0
    finally:
        gc.set_threshold(*default)
