"""GraphQL over HTTP: media types, status codes, GET rules, CSRF, CORS, body size, batching."""

from __future__ import annotations

import json

import httpx
from sqlalchemy import text

from gql_api.db import Database
from tests.hardening_support import app_client

GRAPHQL_RESPONSE = "application/graphql-response+json"


async def test_accept_graphql_response_json(client: httpx.AsyncClient) -> None:
    ok = await client.post(
        "/graphql", json={"query": "{ health { status } }"}, headers={"Accept": GRAPHQL_RESPONSE}
    )
    assert ok.status_code == 200
    assert ok.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    invalid = await client.post(
        "/graphql", json={"query": "{ nope }"}, headers={"Accept": GRAPHQL_RESPONSE}
    )
    assert invalid.status_code == 400
    assert "data" not in invalid.json()
    classic = await client.post(
        "/graphql", json={"query": "{ nope }"}, headers={"Accept": "application/json"}
    )
    assert classic.status_code == 200
    assert classic.headers["content-type"].startswith("application/json")
    assert classic.json()["data"] is None


async def test_field_errors_keep_status_200_and_data(client: httpx.AsyncClient) -> None:
    # Execution started: the response has data (null) and the error, with 200.
    response = await client.post(
        "/graphql", json={"query": "{ users { totalCount } }"}, headers={"Accept": GRAPHQL_RESPONSE}
    )
    assert response.status_code == 200
    body = response.json()
    assert "data" in body and body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


LOGOUT = "mutation { logout }"


async def _session_is_alive(client: httpx.AsyncClient, db: Database, token: str) -> bool:
    me = await client.post(
        "/graphql", json={"query": "{ me { id } }"}, headers={"Authorization": f"Bearer {token}"}
    )
    async with db.engine.connect() as conn:
        live = (
            await conn.execute(text("SELECT count(*) FROM user_sessions WHERE revoked_at IS NULL"))
        ).scalar_one()
    return me.json()["data"]["me"] is not None and live == 1


async def test_get_for_queries_only(
    client: httpx.AsyncClient, db: Database, user_token: str
) -> None:
    query = await client.get("/graphql", params={"query": "{ health { status } }"})
    assert query.status_code == 200 and query.json()["data"]["health"]["status"] == "ok"
    auth = {"Authorization": f"Bearer {user_token}"}
    mutation = await client.get("/graphql", params={"query": LOGOUT}, headers=auth)
    assert mutation.status_code == 405  # the specification's answer: POST is the method for it
    assert mutation.headers["allow"] == "POST"
    assert "data" not in mutation.text
    assert await _session_is_alive(client, db, user_token)


async def test_form_and_text_bodies_are_refused(
    client: httpx.AsyncClient, db: Database, user_token: str
) -> None:
    # A browser can send these cross-site without a preflight: no state change through them.
    auth = {"Authorization": f"Bearer {user_token}"}
    form = await client.post("/graphql", data={"query": LOGOUT}, headers=auth)
    assert form.status_code in (400, 415)
    assert await _session_is_alive(client, db, user_token)
    plain = await client.post(
        "/graphql",
        content=json.dumps({"query": LOGOUT}),
        headers={**auth, "Content-Type": "text/plain"},
    )
    assert plain.status_code in (400, 415)
    assert await _session_is_alive(client, db, user_token)
    # The same mutation as JSON does end the session: the refusals above are what kept it.
    logout = await client.post("/graphql", json={"query": LOGOUT}, headers=auth)
    assert logout.json() == {"data": {"logout": True}}
    assert not await _session_is_alive(client, db, user_token)


async def test_batched_requests_are_off(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json=[{"query": "{ health { status } }"}] * 2)
    assert response.status_code == 400


async def test_batches_when_configured(db: Database) -> None:
    async with app_client(db, graphql={"batching": True, "max_batch_size": 3}) as http:
        batch = [{"query": "{ health { status } }"}, {"query": "{ nope }"}]
        response = await http.post("/graphql", json=batch)
        assert response.status_code == 200
        first, second = response.json()
        assert first == {"data": {"health": {"status": "ok"}}}
        assert second["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        too_many = await http.post("/graphql", json=[{"query": "{ __typename }"}] * 4)
        assert too_many.status_code == 400 and too_many.text == "Too many operations"
        not_objects = await http.post("/graphql", json=[{"query": "{ __typename }"}, 1])
        assert not_objects.status_code == 400


async def test_malformed_requests_are_400_before_any_lookup(
    client: httpx.AsyncClient, user_token: str
) -> None:
    auth = {"Authorization": f"Bearer {user_token}", "Content-Type": "application/json"}
    for body, reason in [
        (b"{", "Unable to parse request body as JSON"),
        (b"1", "The request body must be a JSON object"),
        (b'{"query": 1}', "The GraphQL operation's `query` must be a string or null, if provided."),
        (b'{"query": "{ me { id } }", "variables": []}', "`variables` must be an object"),
        (b'{"query": "{ me { id } }", "operationName": 2}', "`operationName` must be a string"),
        (b'{"variables": {}}', "No GraphQL query found in the request"),
    ]:
        response = await client.post("/graphql", content=body, headers=auth)
        assert response.status_code == 400, body
        assert reason in response.text, (body, response.text)


async def test_body_limit(client: httpx.AsyncClient) -> None:
    padding = "x" * (1024 * 1024)
    response = await client.post(
        "/graphql", json={"query": "{ health { status } }", "variables": {"p": padding}}
    )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    # Just under the limit is parsed as usual.
    small = await client.post(
        "/graphql", json={"query": "{ health { status } }", "variables": {"p": "x" * (1024 * 1000)}}
    )
    assert small.status_code == 200


async def test_body_limit_without_content_length(client: httpx.AsyncClient) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        yield b'{"query": "{ health { status } }", "variables": {"p": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}}'

    response = await client.post(
        "/graphql", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413


async def test_cors_only_for_configured_origins(db: Database) -> None:
    async with app_client(db, server={"cors_origins": ["https://app.example"]}) as http:
        preflight = await http.options(
            "/graphql",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,authorization",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        evil = await http.options(
            "/graphql",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in evil.headers
        simple = await http.post(
            "/graphql", json={"query": "{ __typename }"}, headers={"Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in simple.headers


async def test_no_cors_headers_by_default(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"Origin": "https://x.example"}
    )
    assert "access-control-allow-origin" not in response.headers


async def test_the_legacy_websocket_protocol_is_refused(app) -> None:  # type: ignore[no-untyped-def]
    """A raw ASGI websocket handshake: only graphql-transport-ws is spoken (subscriptions,
    tests/test_realtime.py); the legacy graphql-ws protocol is closed, never accepted as such."""
    for protocol in ("graphql-ws",):
        sent: list[dict[str, object]] = []
        incoming = [{"type": "websocket.connect"}]

        async def receive(incoming: list[dict[str, object]] = incoming) -> dict[str, object]:
            return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

        async def send(message: dict[str, object], sent: list[dict[str, object]] = sent) -> None:
            sent.append(message)

        scope = {
            "type": "websocket",
            "asgi": {"version": "3.0"},
            "scheme": "ws",
            "path": "/graphql",
            "raw_path": b"/graphql",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"testserver"), (b"sec-websocket-protocol", protocol.encode())],
            "subprotocols": [protocol],
            "client": ("127.0.0.1", 40000),
            "server": ("testserver", 80),
        }
        await app(scope, receive, send)
        accepted = [m for m in sent if m["type"] == "websocket.accept"]
        assert all(m.get("subprotocol") != protocol for m in accepted), sent
        closes = [m for m in sent if m["type"] == "websocket.close"]
        assert closes, sent
