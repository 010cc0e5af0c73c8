"""``create_app(settings)``: FastAPI with GraphQL at ``/graphql`` (HTTP and WebSocket),
``/healthz``, ``/readyz`` and ``/metrics``, and the middlewares around them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from gql_api import __version__
from gql_api.auth.session_cache import SessionCache
from gql_api.config import Settings, ensure_jwt_secret, load_settings
from gql_api.db import Database
from gql_api.graphql.engine.pipeline import build_pipeline_schema
from gql_api.observability import tracing
from gql_api.observability.logs import configure_logging
from gql_api.realtime import Hub
from gql_api.web import graphiql
from gql_api.web.body_limit import BodySizeLimitMiddleware
from gql_api.web.cors import CORS_HEADERS, ExplainedCORSMiddleware
from gql_api.web.graphql_http import GraphQLEndpoint, GraphQLEntry
from gql_api.web.graphql_ws import GraphQLWebSocket
from gql_api.web.lifespan import app_lifespan
from gql_api.web.probes import add_probes
from gql_api.web.request_id import RequestIdMiddleware

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter


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
    # "sessions": checks of bearers' sessions remembered between requests (None: off).
    state: dict[str, Any] = {"db": db, "sessions": SessionCache.from_settings(settings)}
    hub = Hub(settings.realtime) if settings.realtime.enabled else None
    app = FastAPI(
        title="gql_api",
        version=__version__,
        lifespan=app_lifespan(settings, state, traced=traced, hub=hub),
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # Tracing is ours (gql_api.observability.tracing, with the request id and GraphQL
        # spans): FastAPI's own would look for OpenTelemetry providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.holder = state
    if settings.graphiql_enabled:
        graphiql.mount_assets(app)  # the page's scripts and styles, from this package
    add_probes(app, settings, state)
    # The one GraphQL-over-HTTP entry (gql_api.graphql.engine.pipeline lists its stages), and
    # subscriptions over WebSocket at the same path (gql_api.web.graphql_ws) when enabled.
    schema = build_pipeline_schema(settings)
    endpoint = GraphQLEndpoint(schema, settings=settings, state=state)
    websocket = (
        None if hub is None else GraphQLWebSocket(schema, settings=settings, state=state, hub=hub)
    )
    # /graphql skips FastAPI's routing and dependency solving (measurable on a ``me`` request);
    # it sits inside CORS, the body limit and the request id like every other route.
    app.add_middleware(GraphQLEntry, endpoint=endpoint, websocket=websocket)
    # Always installed, so a refused preflight is a 400 that names the origin (gql_api.web.cors),
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
    """For ``uvicorn --factory gql_api.web.app:app_factory`` (and each worker of ``serve``)."""
    settings = load_settings()
    configure_logging(settings)
    return create_app(settings)
