"""``create_app(settings)``: FastAPI with GraphQL at ``/graphql``, ``/healthz``, ``/readyz`` and
``/metrics``."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gql_api import __version__, graphiql, metrics
from gql_api.config import Settings, ensure_jwt_secret, load_settings
from gql_api.cors import CORS_HEADERS, ExplainedCORSMiddleware
from gql_api.db import Database, migrations
from gql_api.graphql.endpoint import GraphQLEndpoint, GraphQLEntry
from gql_api.graphql.pipeline import build_pipeline_schema
from gql_api.graphql.websocket import GraphQLWebSocket
from gql_api.http_limits import BodySizeLimitMiddleware
from gql_api.logs import bind_request, configure_logging, unbind_request
from gql_api.metrics_exposure import public_refusal
from gql_api.observability import tracing
from gql_api.ops.maintenance import run_periodic_cleanup
from gql_api.realtime import Hub, Listener

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger(__name__)
access_log = logging.getLogger("gql_api.access")

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_KEY = REQUEST_ID_HEADER.encode()
# Probes and scrapes are logged at DEBUG only: they would drown everything else.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class RequestIdMiddleware:
    """Takes ``X-Request-ID`` (or makes one), keeps it on the request and returns it; binds the
    request's log context and writes one access line when the request ends."""

    def __init__(self, app: ASGIApp, *, trace_ids: bool = False) -> None:
        self.app = app
        self.trace_ids = trace_ids

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope["headers"]:
            if name == _REQUEST_ID_KEY:
                incoming = value.decode("latin-1")
                break
        request_id = (
            incoming
            if incoming and len(incoming) <= 64 and incoming.isprintable()
            else secrets.token_hex(16)
        )
        if self.trace_ids:  # tracing on: the trace's id, so that log lines and traces join
            request_id = tracing.current_trace_id() or request_id
        scope.setdefault("state", {})["request_id"] = request_id
        entry, token = bind_request(request_id)
        status = 500  # unless a response starts

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            path = scope.get("path", "")
            access_log.log(
                logging.DEBUG if path in QUIET_PATHS else logging.INFO,
                "%s %s %s",
                scope.get("method", "-"),
                path,
                status,
                extra={"status": status, "duration_ms": entry.elapsed_ms()},
            )
            unbind_request(token)


def secret_file_for(settings: Settings) -> Path:
    return settings.database.data_dir.expanduser().resolve().parent / "jwt_secret"


def create_app(
    settings: Settings | None = None,
    db: Database | None = None,
    *,
    span_exporter: SpanExporter | None = None,
) -> FastAPI:
    """The ASGI app. With ``db`` given the caller owns it; else the app opens and closes one.
    ``span_exporter`` replaces the OTLP exporter while tracing is on (tests, the benchmark)."""
    settings = settings or load_settings()
    ensure_jwt_secret(settings, secret_file_for(settings))
    traced = tracing.setup(settings, span_exporter)  # None when tracing is off
    state: dict[str, Any] = {"db": db}
    head = migrations.head_revision()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = state["db"] is None
        if owned:
            state["db"] = Database.from_settings(settings)
        log.info("gql_api %s serving on %s", __version__, state["db"].describe())
        metrics.instrument_database(state["db"])
        if traced is not None:
            tracing.instrument_engine(traced, state["db"].engine)
        # Everything loaded so far (modules, schema, plans' machinery) lives as long as the
        # process: keep it out of the cyclic collector's scans (measured +5% on a users page).
        gc.collect()
        gc.freeze()
        cleanup: asyncio.Task[None] | None = None
        if settings.database.cleanup_interval.total_seconds() > 0:
            cleanup = asyncio.create_task(run_periodic_cleanup(state["db"], settings))
        # Replica lag and reachability (gql_api.db.replicas); none configured, no task.
        replica_checks = (
            asyncio.create_task(state["db"].watch_replicas()) if state["db"].replicas else None
        )
        # The one LISTEN connection of this process (gql_api.realtime.listener).
        listener = None
        if hub is not None:
            listen_url = settings.realtime.listen_url or state["db"].url
            listener = Listener(listen_url, hub, settings.realtime)
            listener.start()
        try:
            yield
        finally:
            if listener is not None:
                await listener.stop()
            if replica_checks is not None:
                replica_checks.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await replica_checks
            if cleanup is not None:
                cleanup.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await cleanup
            metrics.worker_exiting()
            if traced is not None:
                traced.shutdown()  # exports the spans still buffered
            if owned:
                await state["db"].dispose()

    app = FastAPI(
        title="gql_api",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.holder = state
    # The one GraphQL-over-HTTP entry (gql_api.graphql.pipeline lists its stages).
    schema = build_pipeline_schema(settings)
    endpoint = GraphQLEndpoint(schema, settings=settings, state=state)
    # Subscriptions over WebSocket at /graphql (gql_api.graphql.websocket), when enabled.
    hub = Hub(settings.realtime) if settings.realtime.enabled else None
    websocket = (
        None if hub is None else GraphQLWebSocket(schema, settings=settings, state=state, hub=hub)
    )
    if settings.graphiql_enabled:
        graphiql.mount_assets(app)  # the page's scripts and styles, from this package

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        """The process is alive; says nothing of the database."""
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        """Ready for traffic: the database answers and its schema is at the migrations' head."""
        database: Database | None = state["db"]
        if database is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        try:
            latency = await database.ping()
            current = await migrations.current_revision(database.engine)
        except Exception as exc:  # unreachable database: not ready, and say why in short
            return JSONResponse(
                {"status": "unavailable", "database": exc.__class__.__name__}, status_code=503
            )
        if current != head:
            return JSONResponse(
                {"status": "migrations pending", "current": current, "head": head},
                status_code=503,
            )
        ready: dict[str, Any] = {
            "status": "ready",
            "latencyMs": round(latency, 3),
            "revision": current,
        }
        if database.replicas:
            # Reported, never failing readiness: reads fall back to the primary without them.
            ready["replicas"] = database.replicas.describe()
        return JSONResponse(ready)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics(request: Request) -> Response:
        """Prometheus exposition; with several workers, summed over all of them. Who may read
        it on this port: gql_api.metrics_exposure."""
        refusal = public_refusal(settings, request.headers.get("authorization"))
        if refusal is not None:
            return refusal
        return Response(await metrics.render(state["db"]), media_type=metrics.CONTENT_TYPE)

    # /graphql skips FastAPI's routing and dependency solving (measurable on a ``me`` request);
    # it sits inside CORS, the body limit and the request id like every other route.
    app.add_middleware(GraphQLEntry, endpoint=endpoint, websocket=websocket)
    # Always installed, so a refused preflight is a 400 that names the origin (gql_api.cors),
    # not the 405 of a route that knows only GET and POST.
    app.add_middleware(
        ExplainedCORSMiddleware,
        allow_origins=settings.server.cors_origins,
        allow_origin_regex=settings.cors_origin_pattern,
        allow_methods=["GET", "POST"],
        allow_headers=list(CORS_HEADERS),
        expose_headers=["X-Request-ID"],
        allow_credentials=False,  # tokens travel in the Authorization header, not cookies
        max_age=600,
    )
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.server.max_body_bytes)
    app.add_middleware(RequestIdMiddleware, trace_ids=traced is not None)
    if traced is not None:  # outermost: the server span covers everything, the request id too
        app.add_middleware(tracing.TracingMiddleware, tracing=traced)
    return app


def app_factory() -> FastAPI:
    """For ``uvicorn --factory gql_api.app:app_factory`` (and each worker of ``serve``)."""
    settings = load_settings()
    configure_logging(settings)
    return create_app(settings)
