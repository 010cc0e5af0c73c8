"""The GraphQL operation's span: a pipeline stage (``gql_api.graphql.engine.pipeline``),
installed only while tracing is on.

It runs last in the pipeline's order, so its ``on_execute`` is entered after the planned
executor's: a result already set there means the plan answered ("planned"), none means
graphql-core is about to ("generic"). It leaves ``on_operation`` first, before the mask, and
reads error codes as the metrics stage does (an unexpected error counts as
``INTERNAL_SERVER_ERROR``, a database failure as what the mask will answer).

Attributes (OpenTelemetry's GraphQL conventions, and ours under ``graphql.``):
``graphql.operation.name`` and ``.type``; ``graphql.document.hash`` (``sha256:`` of the text,
never the text: literals in a document may be passwords); ``graphql.operation.cost`` (as the
limits stage prices it); ``graphql.executor``; ``graphql.error.codes``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError, OperationDefinitionNode
from opentelemetry import context as otel_context
from opentelemetry import trace
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

from gql_api.config import Settings
from gql_api.graphql.engine.analysis import find_operation
from gql_api.graphql.engine.cost import coerce_variables, list_bounds, operation_cost
from gql_api.graphql.engine.strawberry_seams import core_schema
from gql_api.observability import tracing
from gql_api.observability.metrics import (
    _error_code as error_code,  # the codes metrics count, the same way
)

SPAN_NAME = "graphql.operation"


def operation_span_stage(settings: Settings) -> type[SchemaExtension]:
    """The stage's extension class, bound to these settings (for the cost's bounds)."""
    max_page_size = settings.graphql.max_page_size
    bounds = list_bounds(settings)

    class OperationSpan(SchemaExtension):
        executor: str | None = None

        def on_operation(self) -> Iterator[None]:
            active = tracing.CURRENT.get()
            if active is None:  # not through the app's HTTP entry (a test of the bare schema)
                yield
                return
            span = active.tracer.start_span(SPAN_NAME, kind=trace.SpanKind.INTERNAL)
            token = otel_context.attach(trace.set_span_in_context(span))
            errors: list[GraphQLError] = []
            try:
                yield
            except GraphQLError as error:  # a parse error leaves by this door
                errors = [error]
                raise
            else:
                errors = _final_errors(self.execution_context)
            finally:
                try:
                    self._describe(span, errors)
                finally:
                    otel_context.detach(token)
                    span.end()

        def on_execute(self) -> Iterator[None]:
            # Entered after the planned executor's on_execute (see the module docstring).
            self.executor = "planned" if self.execution_context.result is not None else "generic"
            yield

        def _describe(self, span: trace.Span, errors: list[GraphQLError]) -> None:
            if not span.is_recording():
                return
            ec = self.execution_context
            attributes, operation = _describe_operation(span, ec)
            document = ec.graphql_document
            if self.executor is not None:
                attributes["graphql.executor"] = self.executor
                cost = _cost(ec, operation, max_page_size=max_page_size, bounds=bounds)
                if cost is not None:
                    attributes["graphql.operation.cost"] = cost
            if errors:
                codes = sorted({error_code(e, document is not None) for e in errors})
                attributes["graphql.error.codes"] = codes
                tracing.mark_error(span, codes)
            span.set_attributes(attributes)

    return OperationSpan


def _final_errors(ec: ExecutionContext) -> list[GraphQLError]:
    """The errors the operation ended with: execution's, else those that stopped it before."""
    return list(
        (ec.result.errors if ec.result is not None else None) or ec.pre_execution_errors or []
    )


def _describe_operation(
    span: trace.Span, ec: ExecutionContext
) -> tuple[dict[str, Any], OperationDefinitionNode | None]:
    """The document's hash and the operation's name and type as attributes (the span is named
    after them), and the operation, when the document names one."""
    attributes: dict[str, Any] = {}
    if ec.query:
        digest = hashlib.sha256(ec.query.encode("utf-8")).hexdigest()
        attributes["graphql.document.hash"] = f"sha256:{digest}"
    document = ec.graphql_document
    operation = find_operation(document, ec.operation_name) if document else None
    if operation is not None:
        op_type = operation.operation.value
        attributes["graphql.operation.type"] = op_type
        name = operation.name.value[:64] if operation.name else None
        if name:
            attributes["graphql.operation.name"] = name
        span.update_name(f"{op_type} {name}" if name else op_type)
    return attributes, operation


def _cost(
    ec: ExecutionContext,
    operation: OperationDefinitionNode | None,
    *,
    max_page_size: int,
    bounds: dict[str, int],
) -> int | None:
    """The operation's cost as the limits stage prices it; None when its variables do not
    coerce (execution refuses them)."""
    if operation is None or ec.graphql_document is None:
        return None
    schema = core_schema(ec.schema)
    variables = coerce_variables(schema, operation, ec.variables, hide_suggestions=True)
    if isinstance(variables, list):
        return None
    return operation_cost(
        schema,
        ec.graphql_document,
        operation,
        variables,
        max_page_size=max_page_size,
        bounds=bounds,
    )
