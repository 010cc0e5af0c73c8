"""Error masking: expected errors keep their message and code; anything else becomes
INTERNAL_SERVER_ERROR with the request id, and the detail goes to the log."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import asyncpg
from graphql import GraphQLError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from strawberry.extensions import SchemaExtension

from gql_api.graphql.errors import AppError, QueryTimeout, ServiceUnavailable

log = logging.getLogger("gql_api.errors")

_UNAVAILABLE_SQLSTATES = {"57P01", "57P02", "57P03", "08000", "08003", "08006", "08001", "08004"}


def classify(original: BaseException) -> AppError | None:
    """Map infrastructure failures onto expected errors with a code."""
    if isinstance(original, AppError):
        return original
    if isinstance(original, PoolTimeoutError):
        return ServiceUnavailable("The server is busy: no database connection became free in time")
    if isinstance(original, ConnectionError | OSError | asyncpg.InterfaceError):
        return ServiceUnavailable()
    if isinstance(original, asyncpg.PostgresError):
        # From the reads that run straight on asyncpg (gql_api.reads).
        if original.sqlstate == "57014":
            return QueryTimeout()
        if original.sqlstate in _UNAVAILABLE_SQLSTATES:
            return ServiceUnavailable()
        return None
    if isinstance(original, DBAPIError):
        sqlstate = getattr(getattr(original, "orig", None), "sqlstate", None) or getattr(
            getattr(getattr(original, "orig", None), "__cause__", None), "sqlstate", None
        )
        if sqlstate == "57014":
            return QueryTimeout()
        if sqlstate in _UNAVAILABLE_SQLSTATES or isinstance(original, OperationalError):
            return ServiceUnavailable()
        if original.connection_invalidated:
            return ServiceUnavailable()
    return None


_COERCION_MARKERS = ("invalid value", "was not provided", "must not be null")


def is_coercion_error(error: GraphQLError) -> bool:
    """A variable value that does not fit its declared type (found before execution starts)."""
    return error.message.startswith("Variable '$") and any(
        marker in error.message for marker in _COERCION_MARKERS
    )


def with_code(error: GraphQLError) -> GraphQLError:
    """Parse and validation errors get the conventional codes clients switch on."""
    if error.extensions and "code" in error.extensions:
        return error
    if is_coercion_error(error):
        code = "BAD_USER_INPUT"  # the client sent a variable value of the wrong type
    elif error.message.startswith("Syntax Error"):
        code = "TOO_MANY_TOKENS" if "tokens" in error.message else "GRAPHQL_PARSE_FAILED"
    else:
        code = "GRAPHQL_VALIDATION_FAILED"
    error.extensions = {**(error.extensions or {}), "code": code}
    return error


class MaskUnexpectedErrors(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        request_id = getattr(self.execution_context.context, "request_id", None)
        result.errors = [self._mask(error, request_id) for error in result.errors]

    def _mask(self, error: GraphQLError, request_id: str | None) -> GraphQLError:
        original = error.original_error
        if original is None or (isinstance(original, GraphQLError) and error.path is None):
            # Syntax, validation and variable coercion errors: the message is for the client.
            return with_code(error)
        expected = classify(original)
        if expected is not None:
            if expected is original:
                return error
            return GraphQLError(
                expected.message,
                nodes=error.nodes,
                path=error.path,
                original_error=expected,
                extensions=expected.extensions,
            )
        log.error("unexpected error (request %s) at %s", request_id, error.path, exc_info=original)
        return GraphQLError(
            "Internal server error",
            nodes=error.nodes,
            path=error.path,
            extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
        )
