"""Error masking: expected errors keep their message and code; anything else becomes
INTERNAL_SERVER_ERROR with the request id, and the detail goes to the log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import asyncpg
from graphql import GraphQLError
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from strawberry.extensions import SchemaExtension

from gql_api.connection_budget import BudgetExhausted
from gql_api.graphql.errors import AppError, QueryTimeout, ServiceUnavailable

log = logging.getLogger("gql_api.errors")

# SQLSTATE classes and codes that mean "the database cannot serve us right now": connection
# exceptions (08), operator intervention such as shutdown, crash and "starting up" (57P0x),
# insufficient resources such as too many connections (53).
_UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "57P", "53")
_STATEMENT_TIMEOUT = "57014"  # query_canceled: statement_timeout
# undefined_table: the schema is behind the code (a `gql-api migrate down`, or a deploy that has
# not migrated yet); the service answers again once the migrations are applied.
_UNDEFINED_TABLE = "42P01"
_MIGRATIONS_PENDING = "The database schema is not up to date (migrations pending): try again later"
# How far down a chain of wrapped exceptions to look (SQLAlchemy wraps the driver's error in an
# emulated DBAPI error, which its own DBAPIError may wrap again).
_MAX_CHAIN = 8


def classify(original: BaseException) -> AppError | None:
    """Map infrastructure failures onto expected errors with a code."""
    if isinstance(original, AppError):
        return original
    return database_failure(original)


def database_failure(error: BaseException) -> AppError | None:
    """SERVICE_UNAVAILABLE or QUERY_TIMEOUT for a database failure, None for anything else.

    The failure may arrive bare (asyncpg, from the direct reads), as SQLAlchemy's emulated DBAPI
    error (a pool checkout that could not connect), or inside SQLAlchemy's ``DBAPIError``; each
    layer points at the one below through ``orig`` or ``__cause__``, so the chain is walked and
    the driver's error classified by its SQLSTATE class rather than by its name.
    """
    link: BaseException | None = error
    for _ in range(_MAX_CHAIN):
        if link is None:
            break
        found = _classify_one(link)
        if found is not None:
            return found
        if isinstance(link, asyncpg.PostgresError):
            return None  # the server refused the statement itself: not an availability issue
        orig = getattr(link, "orig", None)
        link = orig if isinstance(orig, BaseException) else link.__cause__
    if isinstance(error, DBAPIError) and (
        error.connection_invalidated or isinstance(error, OperationalError | InterfaceError)
    ):
        return ServiceUnavailable()
    return None


def _classify_one(error: BaseException) -> AppError | None:
    if isinstance(error, PoolTimeoutError | BudgetExhausted):
        return ServiceUnavailable("The server is busy: no database connection became free in time")
    if isinstance(error, asyncpg.PostgresError):
        sqlstate = error.sqlstate or ""
        if sqlstate == _STATEMENT_TIMEOUT:
            return QueryTimeout()
        if sqlstate.startswith(_UNAVAILABLE_SQLSTATE_PREFIXES):
            return ServiceUnavailable()
        if sqlstate == _UNDEFINED_TABLE:
            return ServiceUnavailable(_MIGRATIONS_PENDING)
        return None
    # asyncpg's InterfaceError covers a connection that is closed or was lost
    # (ConnectionDoesNotExistError); OSError covers refused and reset sockets and, since
    # Python 3.11, asyncio.TimeoutError from a connect that did not finish in time.
    if isinstance(
        error, asyncpg.InterfaceError | OSError | asyncio.TimeoutError | DisconnectionError
    ):
        return ServiceUnavailable()
    return None


def database_error(exc: Exception) -> GraphQLError:
    """A coded GraphQL error for a database failure outside execution (before or after it);
    anything else is not ours to hide and is raised again."""
    error = database_failure(exc)
    if error is None:
        raise exc
    return GraphQLError(error.message, original_error=error, extensions=error.extensions)


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
