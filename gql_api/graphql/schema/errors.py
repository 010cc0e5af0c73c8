"""The domain errors as the GraphQL layer raises them: the classes live in :mod:`gql_api.errors`
(below GraphQL, so the domain can raise them without importing this package)."""

from __future__ import annotations

from gql_api.errors import (
    AppError,
    BadUserInput,
    Conflict,
    Forbidden,
    NotFound,
    QueryTimeout,
    RateLimited,
    ServiceUnavailable,
    Unauthenticated,
)

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
