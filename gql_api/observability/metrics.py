"""Prometheus metrics: GraphQL requests, latency and errors, pool gauges, failed logins and active
sessions, served at ``/metrics``.

With several uvicorn workers ``gql-api serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh
directory before the workers start; prometheus-client then keeps every counter and histogram in
per-process files that :class:`~prometheus_client.multiprocess.MultiProcessCollector` sums at
scrape time, so any worker answers for all of them. Metric objects are module-level because that
is how prometheus-client shares them with its multi-process files; nothing else happens at import.

Pool figures and active sessions: ``pool_metrics``. Active sessions are counted in PostgreSQL
at scrape time, so they are right with any number of workers and replicas.

Labels stay bounded: operation names only from documents that validated (a named operation of
a document that failed validation counts as ``rejected``: its name is anything a client chose),
at most :data:`MAX_OPERATION_NAMES` distinct ones per process (then ``other``); outcome is
success|error; error codes are the service's codes.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError, OperationDefinitionNode
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

from gql_api.observability import pool_metrics

if TYPE_CHECKING:
    from gql_api.db import Database

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MAX_OPERATION_NAMES = 200
CONTENT_TYPE = CONTENT_TYPE_LATEST

REQUESTS = Counter(
    "gql_api_graphql_requests",
    "GraphQL operations by operation name, type and outcome (success|error).",
    ["operation", "operation_type", "outcome"],
)
LATENCY = Histogram(
    "gql_api_graphql_request_duration_seconds",
    "Time to parse, validate and execute a GraphQL operation.",
    ["operation", "operation_type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
ERRORS = Counter("gql_api_graphql_errors", "GraphQL errors by extensions.code.", ["code"])
EXECUTIONS = Counter(
    "gql_api_graphql_executions",
    "GraphQL operations by the executor that answered them: planned"
    " (gql_api.graphql.engine.planned), or generic (graphql-core, which also answers refused"
    " documents).",
    ["executor"],
)
FAILED_LOGINS = Counter("gql_api_failed_logins", "Failed login attempts (any reason).")
SESSION_CHECKS = Counter(
    "gql_api_session_checks",
    "Bearer session checks by what answered them: cache (a recent check still trusted,"
    " auth.session_cache_ttl) or database.",
    ["source"],
)
SESSION_CHECKS_CACHED = SESSION_CHECKS.labels("cache")
SESSION_CHECKS_READ = SESSION_CHECKS.labels("database")

_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,47}")
_known_operations: set[str] = set()


def record_failed_login() -> None:
    """Count one failed login (wrong password, unknown account, rate-limited, inactive)."""
    FAILED_LOGINS.inc()


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


# --- GraphQL -----------------------------------------------------------------------------------


def operation_labels(
    document: Any, operation_name: str | None, *, validated: bool = True
) -> tuple[str, str]:
    """Bounded (name, type) labels for an operation of a parsed document."""
    if document is None:
        return "invalid", "unknown"
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = next(
        (op for op in operations if (op.name.value if op.name else None) == operation_name), None
    )
    if chosen is None and operation_name is None and len(operations) == 1:
        chosen = operations[0]
    if chosen is None:
        return "unknown", "unknown"
    op_type = chosen.operation.value
    if chosen.name is None:
        return "anonymous", op_type
    if not validated:
        return "rejected", op_type
    name = chosen.name.value[:64]
    if name not in _known_operations:
        if len(_known_operations) >= MAX_OPERATION_NAMES:
            return "other", op_type
        _known_operations.add(name)
    return name, op_type


_PLANNED = "_gql_api_planned"  # set on Strawberry's per-operation ExecutionContext


def mark_planned(ec: ExecutionContext) -> None:
    """The planned executor answered this operation (``gql_api_graphql_executions_total``)."""
    setattr(ec, _PLANNED, True)


def _operation_labels(ec: ExecutionContext, *, validated: bool) -> tuple[str, str]:
    return operation_labels(ec.graphql_document, ec.operation_name, validated=validated)


def _error_code(error: GraphQLError, parsed: bool) -> str:
    code = (error.extensions or {}).get("code")
    if code is None and error.original_error is not None:
        from gql_api.db.failures import classify  # the mask runs after us: same mapping

        expected = classify(error.original_error)
        code = expected.code if expected is not None else "INTERNAL_SERVER_ERROR"
    if code is None:
        code = "GRAPHQL_VALIDATION_FAILED" if parsed else "GRAPHQL_PARSE_FAILED"
    return code if isinstance(code, str) and _CODE.fullmatch(code) else "OTHER"


class MetricsExtension(SchemaExtension):
    """Counts each operation, its latency and its errors: two hooks, nothing per field."""

    validated = False  # whether the document passed GraphQL validation (set per operation)

    def on_validate(self) -> Iterator[None]:
        yield
        # Validation has run. Errors added later (request limits, a bad token) do not make the
        # operation's name any less the name of a document of this schema.
        self.validated = not self.execution_context.pre_execution_errors

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        except GraphQLError as error:
            # A parse error raised through the parser cache leaves by this door.
            self._record(started, [error])
            raise
        ec = self.execution_context
        errors = (ec.result.errors if ec.result is not None else None) or (
            ec.pre_execution_errors or []
        )
        self._record(started, errors)

    def _record(self, started: float, errors: list[GraphQLError]) -> None:
        ec = self.execution_context
        name, op_type = _operation_labels(ec, validated=self.validated)
        _child(REQUESTS, name, op_type, "error" if errors else "success").inc()
        _child(EXECUTIONS, "planned" if getattr(ec, _PLANNED, False) else "generic").inc()
        _child(LATENCY, name, op_type).observe(time.perf_counter() - started)
        parsed = ec.graphql_document is not None
        for error in errors:
            _child(ERRORS, _error_code(error, parsed)).inc()


@functools.lru_cache(maxsize=4096)
def _child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, looked up once: ``labels`` takes a lock and checks every
    value on each call, three times per request. Label values are bounded (operation names
    by MAX_OPERATION_NAMES, codes by their pattern), and so is this cache."""
    return metric.labels(*labels)


# --- workers and scrapes (the pool and session figures: pool_metrics) ---------------------------


def instrument_database(db: Database) -> None:
    """With several workers, publish this worker's pool figures after each checkout/return."""
    if multiprocess_dir() is None:
        return

    def publish() -> None:
        pool_metrics.publish(db)

    db.pool_listeners.append(publish)
    publish()


def worker_exiting() -> None:
    """Drop this worker's live gauges from the multi-process files."""
    if multiprocess_dir() is not None:
        mark_process_dead(os.getpid())


class _Forward:
    """The process-wide registry as one collector of a per-scrape registry."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


async def render(db: Database) -> bytes:
    """The exposition text for one scrape."""
    from gql_api.repositories.monitoring import count_active_sessions

    try:
        async with db.stale_session() as session:
            active: int | None = await count_active_sessions(session)
    except Exception as exc:  # a scrape still reports everything else
        log.warning("metrics: cannot count active sessions: %s", exc.__class__.__name__)
        active = None
    registry = CollectorRegistry()
    shared = multiprocess_dir()
    if shared is not None:
        MultiProcessCollector(registry, path=shared)
    else:
        registry.register(_Forward())  # type: ignore[arg-type]
    registry.register(pool_metrics.Snapshot(db, active, with_pool=shared is None))  # type: ignore[arg-type]
    return generate_latest(registry)


__all__ = [
    "CONTENT_TYPE",
    "MetricsExtension",
    "instrument_database",
    "record_failed_login",
    "render",
    "worker_exiting",
]
