"""OpenTelemetry tracing (issue 19): the span tree of real requests through the real app on a
real PostgreSQL, read from an in-memory exporter; an OTLP/HTTP export from a real uvicorn
process into a sink on 127.0.0.1; secrets never in a span; ``traceparent`` honoured; the log
line's request id is the trace id; off, nothing is traced."""

from __future__ import annotations

import http.server
import json
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from gql_api.config import Settings, load_settings
from gql_api.db import Database
from gql_api.web.app import create_app
from tests.conftest import (
    TEST_PASSWORD,
    MadeUser,
    error_codes,
    insert_user,
    make_settings,
    session_token,
)
from tests.server_support import server_env, uvicorn_server

CLIENT_IP = "203.0.113.77"  # TEST-NET-3: appears nowhere but in the transport's client address

ME = "query Me { me { id email firstName } }"
PAGE = """query Page { users(first: 10) { totalCount edges { node { email
  profile { bio } sessions { id } } } } }"""
LOGIN = """mutation Login($input: LoginInput!) { login(input: $input) {
  accessToken refreshToken } }"""


class Traced:
    """An app with tracing on and an in-memory exporter, and an HTTP client for it."""

    def __init__(self, http: httpx.AsyncClient, exporter: InMemorySpanExporter) -> None:
        self.http = http
        self.exporter = exporter

    async def post(
        self, query: str, variables: dict[str, Any] | None = None, **headers: str
    ) -> httpx.Response:
        self.exporter.clear()
        return await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())


@asynccontextmanager
async def traced_app(
    settings: Settings, database_url: str, *, fast_execution: bool = True, **tracing: bool
) -> AsyncIterator[Traced]:
    """The app with tracing on (and ``tracing`` settings), its spans in memory."""
    changed = settings.model_copy(
        update={
            "tracing": settings.tracing.model_copy(update={"enabled": True, **tracing}),
            "graphql": settings.graphql.model_copy(update={"fast_execution": fast_execution}),
        }
    )
    # An engine of its own: the SQLAlchemy listeners go with it, never onto the shared one.
    database = Database(changed.database, database_url, None)
    exporter = InMemorySpanExporter()
    app = create_app(changed, database, span_exporter=exporter)
    transport = httpx.ASGITransport(app=app, client=(CLIENT_IP, 40000))
    try:
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as h:
                yield Traced(h, exporter)
    finally:
        await database.dispose()


@pytest.fixture
async def traced(settings: Settings, database_url: str, db: Database) -> AsyncIterator[Traced]:
    async with traced_app(settings, database_url) as app:
        yield app


# --- the span tree -----------------------------------------------------------------------------


def _one_trace(spans: list[ReadableSpan]) -> tuple[ReadableSpan, dict[int, ReadableSpan]]:
    """The server span (the one root) of a request's spans, all in one trace; by span id."""
    assert spans, "no span exported"
    trace_ids = {s.context.trace_id for s in spans}
    assert len(trace_ids) == 1, [(s.name, s.context.trace_id) for s in spans]
    by_id = {s.context.span_id: s for s in spans}
    roots = [s for s in spans if s.parent is None or s.parent.span_id not in by_id]
    assert len(roots) == 1, [s.name for s in roots]
    assert roots[0].kind == SpanKind.SERVER
    return roots[0], by_id


def _ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[ReadableSpan]:
    chain = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        chain.append(span)
    return chain


def _operation(spans: list[ReadableSpan]) -> ReadableSpan:
    found = [s for s in spans if s.attributes and "graphql.document.hash" in s.attributes]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def _statements(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return [s for s in spans if s.attributes and s.attributes.get("db.system") == "postgresql"]


def _loader_spans(spans: list[ReadableSpan]) -> dict[str, int]:
    return {
        str(s.attributes["graphql.dataloader.relation"]): int(
            s.attributes["graphql.dataloader.batch_size"]  # type: ignore[arg-type]
        )
        for s in spans
        if s.attributes and "graphql.dataloader.relation" in s.attributes
    }


async def test_me_is_one_trace_server_operation_and_statements(
    traced: Traced, db: Database, settings: Settings, user: MadeUser
) -> None:
    token = await session_token(db, settings, user)
    response = await traced.post(ME, authorization=f"Bearer {token}")
    assert response.status_code == 200 and response.json()["data"]["me"]["email"] == user.email

    spans = traced.spans()
    server, by_id = _one_trace(spans)
    assert server.name == "POST /graphql"
    assert server.attributes is not None and server.attributes["http.status_code"] == 200
    operation = _operation(spans)
    assert operation.parent is not None and operation.parent.span_id == server.context.span_id
    assert operation.name == "query Me"
    attributes = operation.attributes or {}
    assert attributes["graphql.operation.name"] == "Me"
    assert attributes["graphql.operation.type"] == "query"
    assert attributes["graphql.executor"] == "planned"
    assert attributes["graphql.operation.cost"] == 4  # me + three scalar fields
    assert str(attributes["graphql.document.hash"]).startswith("sha256:")
    assert "graphql.error.codes" not in attributes
    assert operation.status.status_code != StatusCode.ERROR

    statements = _statements(spans)
    assert statements, "no statement span"
    for statement in statements:
        assert statement.kind == SpanKind.CLIENT
        assert server in _ancestors(statement, by_id)
        # Exactly once: no statement span inside another (the direct reads skip SQLAlchemy).
        assert not any(_statements([a]) for a in _ancestors(statement, by_id))
        text = str((statement.attributes or {})["db.statement"])
        assert "$1" in text or "SELECT" in text.upper()
    # The request id is the trace id.
    assert response.headers["x-request-id"] == format(server.context.trace_id, "032x")


async def test_users_page_loader_batches_for_both_executors(
    traced: Traced, db: Database, settings: Settings, database_url: str, admin: MadeUser
) -> None:
    token = await session_token(db, settings, admin)
    for n in range(3):
        await insert_user(db, email=f"paged{n}@example.com")
    expected_users = 4  # the admin and three
    seen: dict[str, dict[str, Any]] = {}
    async with traced_app(settings, database_url, fast_execution=False) as generic_only:
        for name, app in (("planned", traced), ("generic", generic_only)):
            seen[name] = await _page(app, token, expected_users)
    batch = {"User.profile": expected_users, "User.sessions": expected_users}
    assert seen["planned"]["executor"] == "planned" and seen["generic"]["executor"] == "generic"
    assert seen["planned"]["loaders"] == batch and seen["generic"]["loaders"] == batch
    # README: token check, page (with its total), profiles, sessions: 4 statements, a span each.
    assert seen["planned"]["statements"] == 4 and seen["generic"]["statements"] == 4
    assert seen["planned"]["cost"] == seen["generic"]["cost"]


async def _page(traced: Traced, token: str, expected_users: int) -> dict[str, Any]:
    """The page's operation and loader spans, each loader's statement inside its span."""
    response = await traced.post(PAGE, authorization=f"Bearer {token}")
    body = response.json()
    assert "errors" not in body, body
    assert len(body["data"]["users"]["edges"]) == expected_users
    spans = traced.spans()
    _, by_id = _one_trace(spans)
    operation = _operation(spans)
    loaders = [s for s in spans if s.attributes and "graphql.dataloader.relation" in s.attributes]
    for loader in loaders:
        assert operation in _ancestors(loader, by_id)
        inside = [s for s in _statements(spans) if loader in _ancestors(s, by_id)]
        assert len(inside) == 1, [s.name for s in inside]
    return {
        "executor": (operation.attributes or {})["graphql.executor"],
        "loaders": _loader_spans(spans),
        "statements": len(_statements(spans)),
        "cost": (operation.attributes or {})["graphql.operation.cost"],
    }


async def test_login_has_a_password_hashing_span(traced: Traced, user: MadeUser) -> None:
    response = await traced.post(LOGIN, {"input": {"email": user.email, "password": TEST_PASSWORD}})
    assert response.json()["data"]["login"]["accessToken"], response.text
    spans = traced.spans()
    _, by_id = _one_trace(spans)
    operation = _operation(spans)
    assert operation.name == "mutation Login"
    assert (operation.attributes or {})["graphql.executor"] == "generic"  # mutations
    hashing = [s for s in spans if s.name.startswith("password.")]
    assert [s.name for s in hashing] == ["password.verify"]
    assert operation in _ancestors(hashing[0], by_id)
    assert (hashing[0].attributes or {})["password.bcrypt_cost"] == 4
    # The session's writes go through SQLAlchemy: its instrumentation's spans, in this trace.
    through_orm = [
        s
        for s in _statements(spans)
        if s.instrumentation_scope and "sqlalchemy" in s.instrumentation_scope.name
    ]
    assert any("INSERT INTO user_sessions" in str(s.attributes) for s in through_orm)
    for statement in _statements(spans):
        assert not any(_statements([a]) for a in _ancestors(statement, by_id))


async def test_failed_requests_carry_their_error_codes(
    traced: Traced, db: Database, user: MadeUser
) -> None:
    bad_token = {"authorization": "Bearer not-a-token"}
    cases: list[tuple[str, dict[str, Any], dict[str, str], list[str]]] = [
        ("query Me { me { id } }", {}, bad_token, ["UNAUTHENTICATED"]),
        ("query { users(first: 1) { totalCount } }", {}, {}, ["UNAUTHENTICATED"]),
        ("query { me { id ", {}, {}, ["GRAPHQL_PARSE_FAILED"]),
        ("query { nope }", {}, {}, ["GRAPHQL_VALIDATION_FAILED"]),
        ("query { users(first: 1000) { totalCount } }", {}, {}, []),
        (LOGIN, {"input": {"email": user.email, "password": "wrong-password"}}, {}, []),
    ]
    for query, variables, headers, expected in cases:
        response = await traced.post(query, variables, **headers)
        codes = sorted(set(error_codes(response.json())))
        assert codes, response.text
        operation = _operation(traced.spans())
        assert operation.status.status_code == StatusCode.ERROR
        recorded: Any = (operation.attributes or {})["graphql.error.codes"]
        assert list(recorded) == (expected or codes)
        assert not expected or codes == expected, (query, codes)


async def test_traceparent_from_the_caller_becomes_the_parent(
    traced: Traced, db: Database, settings: Settings, user: MadeUser
) -> None:
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    token = await session_token(db, settings, user)
    response = await traced.post(
        ME, authorization=f"Bearer {token}", traceparent=f"00-{trace_id}-{parent_id}-01"
    )
    assert response.status_code == 200
    server, _ = _one_trace(traced.spans())
    assert format(server.context.trace_id, "032x") == trace_id
    assert server.parent is not None and format(server.parent.span_id, "016x") == parent_id
    assert server.parent.is_remote
    assert response.headers["x-request-id"] == trace_id


def _everything_recorded(spans: list[ReadableSpan]) -> str:
    parts: list[str] = []
    for span in spans:
        parts.append(span.name)
        parts.extend(f"{k}={v!s}" for k, v in (span.attributes or {}).items())
        for event in span.events:
            parts.append(event.name)
            parts.extend(f"{k}={v!s}" for k, v in (event.attributes or {}).items())
        parts.extend(f"{k}={v!s}" for k, v in span.resource.attributes.items())
    return "\n".join(parts)


async def test_no_secret_in_any_span(
    traced: Traced, db: Database, settings: Settings, user: MadeUser
) -> None:
    recorded: list[ReadableSpan] = []
    login = await traced.post(LOGIN, {"input": {"email": user.email, "password": TEST_PASSWORD}})
    tokens = login.json()["data"]["login"]
    recorded += traced.spans()
    # A password written into the document itself, and a wrong one in the variables.
    inline = (
        f'mutation {{ login(input: {{email: "{user.email}", password: "{TEST_PASSWORD}"}})'
        " { accessToken } }"
    )
    recorded += [s for _ in [await traced.post(inline)] for s in traced.spans()]
    await traced.post(LOGIN, {"input": {"email": user.email, "password": "Wr0ng-but-secret"}})
    recorded += traced.spans()
    await traced.post(ME, authorization=f"Bearer {tokens['accessToken']}")
    recorded += traced.spans()
    # GET puts the document and the variables in the query string.
    marker = f"secret-{uuid.uuid4().hex}"
    traced.exporter.clear()
    response = await traced.http.get(
        "/graphql",
        params={
            "query": "query Q($s: String) { me { id } }",
            "variables": json.dumps({"s": marker}),
        },
        headers={"authorization": f"Bearer {tokens['accessToken']}", "accept": "application/json"},
    )
    assert response.status_code == 200, response.text
    recorded += traced.spans()

    text = _everything_recorded(recorded)
    assert "graphql.operation.type=mutation" in text and "db.statement=" in text  # we did look
    for secret in (
        TEST_PASSWORD,
        "Wr0ng-but-secret",
        tokens["accessToken"],
        tokens["refreshToken"],
        user.email,
        CLIENT_IP,
        marker,
    ):
        assert secret not in text, secret


async def test_client_address_and_query_string_only_when_configured(
    settings: Settings, database_url: str, db: Database
) -> None:
    async with traced_app(
        settings, database_url, record_client_address=True, record_query_string=True
    ) as configured:
        response = await configured.http.get("/graphql", params={"query": "{ __typename }"})
        assert response.status_code == 200, response.text
        text = _everything_recorded(configured.spans())
    assert CLIENT_IP in text and "__typename" in text


async def test_off_installs_nothing(client: httpx.AsyncClient, settings: Settings) -> None:
    """The shared app (tracing off): no trace id for a request id, traceparent ignored."""
    assert settings.tracing.enabled is False
    trace_id = secrets.token_hex(16)
    response = await client.post(
        "/graphql",
        json={"query": "{ __typename }"},
        headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] != trace_id


def test_otel_environment_turns_tracing_on_and_off() -> None:
    base = {"USER_SERVICE_ENV": "test", "USER_SERVICE_CONFIG_DIR": "/nonexistent"}
    assert load_settings(environ=base).tracing.enabled is False
    on = {**base, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert load_settings(environ=on).tracing.enabled is True
    assert load_settings(environ={**on, "OTEL_SDK_DISABLED": "true"}).tracing.enabled is False
    assert make_settings("postgresql://x/y", tracing={"enabled": True}).tracing.enabled is True


# --- OTLP/HTTP from a real server process ------------------------------------------------------


class _Sink(http.server.BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def otlp_sink() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    received: list[tuple[str, bytes]] = []
    handler = type("Sink", (_Sink,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _decoded(received: list[tuple[str, bytes]]) -> list[tuple[dict[str, Any], Any]]:
    """Every span the sink received, with its resource's attributes."""
    spans: list[tuple[dict[str, Any], Any]] = []
    for path, body in list(received):
        assert path == "/v1/traces", path
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                spans.extend((resource, span) for span in scope_spans.spans)
    return spans


@pytest.mark.slow
def test_otlp_export_from_a_server_process(
    otlp_sink: tuple[str, list[tuple[str, bytes]]],
    database_url: str,
    db: Database,
    tmp_path: Path,
) -> None:
    endpoint, received = otlp_sink
    env = server_env(
        database_url,
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_SERVICE_NAME="gql-api-under-test",
        OTEL_BSP_SCHEDULE_DELAY="100",
        USER_SERVICE_LOGGING_LEVEL="info",
        USER_SERVICE_LOGGING_FORMAT="json",
    )
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    with uvicorn_server(env, tmp_path / "server.log") as server:
        response = httpx.post(
            f"{server.url}/graphql",
            json={"query": "query Hello { __typename }"},
            headers={"traceparent": f"00-{trace_id}-{parent_id}-01"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        assert response.headers["x-request-id"] == trace_id

        deadline = time.monotonic() + 20
        ours: list[tuple[dict[str, Any], Any]] = []
        while time.monotonic() < deadline:
            ours = [(r, s) for r, s in _decoded(received) if s.trace_id.hex() == trace_id]
            if any(s.name == "query Hello" for _, s in ours):
                break
            time.sleep(0.1)
        names = {s.name for _, s in ours}
        assert {"POST /graphql", "query Hello"} <= names, (names, server.errors())
        resource, http_span = next((r, s) for r, s in ours if s.name == "POST /graphql")
        assert resource["service.name"] == "gql-api-under-test"
        assert http_span.parent_span_id.hex() == parent_id
        log = server.log()
    access = [
        json.loads(line)
        for line in log.splitlines()
        if line.startswith("{") and '"gql_api.access"' in line and "/graphql" in line
    ]
    assert access and access[-1]["request_id"] == trace_id, log[-3000:]
