"""The public ``health`` query: cheap enough for anyone to call."""

from __future__ import annotations

import logging

import strawberry

from gql_api import __version__
from gql_api.graphql.context import Context

log = logging.getLogger(__name__)


@strawberry.type
class DatabaseHealth:
    ok: bool
    latency_ms: float | None


@strawberry.type
class Health:
    status: str
    database: DatabaseHealth
    version: str


@strawberry.type
class HealthQuery:
    @strawberry.field(description="Service status: public and cheap (one SELECT 1).")
    async def health(self, info: strawberry.Info[Context, None]) -> Health:
        try:
            latency = await info.context.db.ping()
            database = DatabaseHealth(ok=True, latency_ms=round(latency, 3))
        except Exception as exc:  # any failure to reach the database is a health answer
            log.warning("health: database ping failed: %s", exc.__class__.__name__)
            database = DatabaseHealth(ok=False, latency_ms=None)
        return Health(
            status="ok" if database.ok else "degraded", database=database, version=__version__
        )
