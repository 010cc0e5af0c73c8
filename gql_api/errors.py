"""Domain errors: what the service refuses, each with a stable ``extensions.code``.

    AppError                    base: message kept, code in extensions
    ├── BadUserInput            BAD_USER_INPUT, ``fields`` maps field -> message
    ├── Unauthenticated         UNAUTHENTICATED
    ├── Forbidden               FORBIDDEN
    ├── NotFound                NOT_FOUND
    ├── Conflict                CONFLICT
    ├── RateLimited             RATE_LIMITED, ``retryAfter`` in seconds
    ├── ServiceUnavailable      SERVICE_UNAVAILABLE (database unreachable, pool exhausted)
    └── QueryTimeout            QUERY_TIMEOUT (a statement ran past statement_timeout)

The domain (``gql_api.auth``, ``gql_api.users``, ``gql_api.repositories``) raises these; it knows
nothing of GraphQL. The GraphQL layer (``gql_api.graphql.engine.masking``) answers them with their
message and code: graphql-core copies ``extensions`` of the original exception onto the located
error. Anything else raised by a resolver is unexpected: it is logged with the request id and
reaches the client as INTERNAL_SERVER_ERROR with that id, never with its message or a stack trace.
"""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions: dict[str, Any] = {"code": self.code, **extensions}


class BadUserInput(AppError):
    code = "BAD_USER_INPUT"

    def __init__(self, message: str, fields: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message, fields=fields or {}, **extra)


class Unauthenticated(AppError):
    code = "UNAUTHENTICATED"

    def __init__(self, message: str = "Authentication required", **extra: Any) -> None:
        super().__init__(message, **extra)


class Forbidden(AppError):
    code = "FORBIDDEN"

    def __init__(self, message: str = "You are not allowed to do this", **extra: Any) -> None:
        super().__init__(message, **extra)


class NotFound(AppError):
    code = "NOT_FOUND"


class Conflict(AppError):
    code = "CONFLICT"


class RateLimited(AppError):
    code = "RATE_LIMITED"

    def __init__(self, message: str, retry_after: int, **extra: Any) -> None:
        super().__init__(message, retryAfter=max(int(retry_after), 1), **extra)


class ServiceUnavailable(AppError):
    code = "SERVICE_UNAVAILABLE"

    def __init__(
        self, message: str = "The database is unavailable; try again shortly", **extra: Any
    ) -> None:
        super().__init__(message, **extra)


class QueryTimeout(AppError):
    code = "QUERY_TIMEOUT"

    def __init__(self, message: str = "The query took too long and was cancelled", **extra: Any):
        super().__init__(message, **extra)


__all__ = [
    "AppError",
    "BadUserInput",
    "Conflict",
    "Forbidden",
    "NotFound",
    "QueryTimeout",
    "RateLimited",
    "ServiceUnavailable",
    "Unauthenticated",
]
