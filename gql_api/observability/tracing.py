"""OpenTelemetry tracing: off by default, and free when off.

On (``tracing.enabled``, which ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``..._TRACES_ENDPOINT`` in the
environment turn on and ``OTEL_SDK_DISABLED=true`` off: ``gql_api.config``), :func:`setup`
builds a tracer provider of the service's own (the process-wide one is left alone, so tests can
run apps with their own exporters): the official SDK, its resource and sampler from the
standard ``OTEL_*`` variables, and the OTLP/HTTP exporter behind a batch processor (endpoint,
headers, timeout and compression from ``OTEL_EXPORTER_OTLP_*``). The packages are the
``tracing`` extra, imported only once tracing is on. One request is one trace:

- the HTTP server span: opentelemetry-instrumentation-asgi's middleware, behind
  :class:`TracingMiddleware`, which shows it the request without its query string
  (``GET /graphql?query=...&variables=...`` may hold secrets) nor the client address unless
  ``tracing.record_query_string`` / ``record_client_address`` say so. ``traceparent`` from the
  caller makes the parent (``OTEL_PROPAGATORS``, W3C trace context by default);
- the GraphQL operation span: ``gql_api.graphql.engine.operation_span``, a pipeline stage;
- DataLoader batches, password hashing and the direct asyncpg reads: :func:`span` here;
- every statement through SQLAlchemy: opentelemetry-instrumentation-sqlalchemy's
  ``EngineTracer`` on this engine only (``db.statement`` is the statement's text with its
  ``$n`` placeholders, never the values). The direct reads (``gql_api.db.direct_reads``) skip
  SQLAlchemy's cursor events, so each statement gets one span, from one side or the other.

Off, nothing is installed: no middleware, no pipeline stage, no engine listener; the few
places that open a span read :data:`CURRENT` (one context variable, None) and go on.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Receive, Scope, Send

from gql_api.config import ConfigError, Settings

if TYPE_CHECKING:  # the packages of the ``tracing`` extra are imported only once it is on
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

INSTRUMENTATION = "gql_api"
DEFAULT_SERVICE_NAME = "gql_api"
# Never recorded even when an operator asks the ASGI middleware for request headers
# (OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST): their values are replaced.
SECRET_HEADERS = ["authorization", "cookie", "set-cookie", "x-api-key", "proxy-authorization"]
_REAL_SCOPE = "gql_api.tracing.scope"


@dataclass
class Tracing:
    """The service's tracer provider and tracer, and what the middleware may record."""

    provider: TracerProvider
    tracer: Tracer
    record_client_address: bool
    record_query_string: bool

    def shutdown(self) -> None:
        """Export what is left and stop."""
        self.provider.shutdown()


# The tracing of the app serving the current request (set by TracingMiddleware; None: off).
# Per request rather than per process, so that apps with tracing of their own (tests) coexist.
CURRENT: ContextVar[Tracing | None] = ContextVar("gql_api_tracing", default=None)


def setup(settings: Settings, exporter: SpanExporter | None = None) -> Tracing | None:
    """The tracing of an app, or None when off. ``exporter`` (a sink in this process: tests)
    replaces the OTLP exporter and its batching."""
    if not settings.tracing.enabled:
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError as exc:
        raise ConfigError(
            "configuration error: tracing is on (tracing.enabled or OTEL_EXPORTER_OTLP_ENDPOINT)"
            f" but {exc.name} is not installed: pip install 'gql_api[tracing]'"
        ) from None
    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)  # OTEL_TRACES_SAMPLER(_ARG), span limits
    if exporter is None:
        exporter = OTLPSpanExporter()  # OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _HEADERS, ...
        provider.add_span_processor(BatchSpanProcessor(exporter))  # OTEL_BSP_*
    else:  # a sink in this process: each span as it ends, so a test reads it at once
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing(
        provider=provider,
        tracer=provider.get_tracer(INSTRUMENTATION),
        record_client_address=settings.tracing.record_client_address,
        record_query_string=settings.tracing.record_query_string,
    )


def instrument_engine(tracing: Tracing, engine: Any) -> None:
    """Trace the statements of ``engine`` (an AsyncEngine) into ``tracing``."""
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.metrics import NoOpMeterProvider

    usage = (
        NoOpMeterProvider()
        .get_meter(INSTRUMENTATION)
        .create_up_down_counter("db.client.connections.usage")
    )
    # Listeners on this engine only (the instrumentor would also patch create_engine process-wide);
    # they go with the engine.
    EngineTracer(
        tracing.provider.get_tracer("opentelemetry.instrumentation.sqlalchemy"),
        engine.sync_engine,
        usage,
    )


def span(
    name: str, attributes: Mapping[str, Any] | None = None, *, client: bool = False
) -> AbstractContextManager[Span | None]:
    """A child span of the current one while tracing is on; a no-op context otherwise.
    ``client``: the span of a call to another service (a statement)."""
    tracing = CURRENT.get()
    if tracing is None:
        return _OFF
    from opentelemetry.trace import SpanKind

    kind = SpanKind.CLIENT if client else SpanKind.INTERNAL
    return tracing.tracer.start_as_current_span(name, kind=kind, attributes=attributes)


_OFF: AbstractContextManager[None] = nullcontext()


def statement_span(sql: str, engine: Any) -> AbstractContextManager[Span | None]:
    """The span of a statement sent straight on asyncpg through ``engine``'s pool, named and
    described as the SQLAlchemy instrumentation describes its own (``db.statement`` holds the
    placeholders, never the values)."""
    if CURRENT.get() is None:
        return _OFF
    database = engine.url.database
    operation = sql.split(None, 1)[0] if sql.strip() else "postgresql"
    attributes = {"db.system": "postgresql", "db.statement": sql, "db.operation": operation}
    if database:
        attributes["db.name"] = database
    return span(f"{operation} {database}" if database else operation, attributes, client=True)


def current_trace_id() -> str | None:
    """The current trace's id in hex (the request id when tracing is on), or None."""
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def mark_error(target: Span, codes: list[str]) -> None:
    from opentelemetry.trace import Status, StatusCode

    target.set_status(Status(StatusCode.ERROR, ",".join(codes)[:200]))


class TracingMiddleware:
    """The HTTP server span (opentelemetry-instrumentation-asgi), shown a copy of the request
    without its query string and client address unless configured; the app gets the request
    as it came."""

    def __init__(self, app: ASGIApp, *, tracing: Tracing) -> None:
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
        from opentelemetry.util.http import (
            OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS,
            get_custom_headers,
        )

        self.app = app
        self.tracing = tracing
        sanitize = SECRET_HEADERS + get_custom_headers(
            OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS
        )
        self.traced = OpenTelemetryMiddleware(
            _restore_scope(app),
            tracer_provider=tracing.provider,
            http_capture_headers_sanitize_fields=sanitize,
            # The ASGI receive/send events as spans of their own: noise for a JSON API.
            exclude_spans=["receive", "send"],
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        shown = dict(scope)
        shown[_REAL_SCOPE] = scope
        if not self.tracing.record_query_string:
            shown["query_string"] = b""
        if not self.tracing.record_client_address:
            shown["client"] = None
        token = CURRENT.set(self.tracing)
        try:
            await self.traced(shown, receive, send)
        finally:
            CURRENT.reset(token)


def _restore_scope(app: ASGIApp) -> ASGIApp:
    async def restored(scope: Scope, receive: Receive, send: Send) -> None:
        await app(scope.get(_REAL_SCOPE, scope), receive, send)

    return restored


__all__ = [
    "CURRENT",
    "Tracing",
    "TracingMiddleware",
    "current_trace_id",
    "instrument_engine",
    "mark_error",
    "setup",
    "span",
    "statement_span",
]
