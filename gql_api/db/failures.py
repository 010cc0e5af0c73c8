"""Which database failures are expected: the database is down or busy (SERVICE_UNAVAILABLE),
or a statement ran past statement_timeout (QUERY_TIMEOUT). Anything else is not classified here.

Below GraphQL: the masking of GraphQL errors and the metrics both ask the same question here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from gql_api.db.connection_budget import BudgetExhausted
from gql_api.errors import AppError, QueryTimeout, ServiceUnavailable

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


def ends_session(error: BaseException) -> bool:
    """Whether the server ended the connection's session with this error (FATAL: shutdown,
    crash recovery, termination; or a connection failure), bare or wrapped by SQLAlchemy. No
    ReadyForQuery follows it, so asyncpg's protocol never returns to idle: the connection must
    not be used again."""
    for link in _chain(error):
        if isinstance(link, asyncpg.PostgresError):
            severity = getattr(link, "severity", None) or ""
            sqlstate = link.sqlstate or ""
            return severity in ("FATAL", "PANIC") or sqlstate.startswith(("08", "57P"))
    return False


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error and those it wraps: SQLAlchemy's errors point at the one below through
    ``orig``, the driver's emulated DBAPI errors through ``__cause__``."""
    link: BaseException | None = error
    for _ in range(_MAX_CHAIN):
        if link is None:
            return
        yield link
        orig = getattr(link, "orig", None)
        link = orig if isinstance(orig, BaseException) else link.__cause__


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
    for link in _chain(error):
        found = _classify_one(link)
        if found is not None:
            return found
        if isinstance(link, asyncpg.PostgresError):
            return None  # the server refused the statement itself: not an availability issue
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
    # (ConnectionDoesNotExistError), its InternalClientError a connection whose protocol was
    # left mid-operation by a lost server; OSError covers refused and reset sockets and, since
    # Python 3.11, asyncio.TimeoutError from a connect that did not finish in time.
    if isinstance(
        error,
        asyncpg.InterfaceError
        | asyncpg.InternalClientError
        | OSError
        | asyncio.TimeoutError
        | DisconnectionError,
    ):
        return ServiceUnavailable()
    return None
