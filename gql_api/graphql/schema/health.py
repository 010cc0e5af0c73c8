"""The public ``health`` query: cheap enough for anyone to call."""

from __future__ import annotations

import logging

import strawberry

from gql_api import __version__
from gql_api.graphql.schema.context import Context

log = logging.getLogger(__name__)


@strawberry.type
class DatabaseHealth:
    ok: bool
    latency_ms: float | None


@strawberry.type
class ReplicaHealth:
    name: str
    in_rotation: bool = strawberry.field(
        description="Serving staleness-tolerant reads; false while too far behind or down."
    )
    lag_seconds: float | None = strawberry.field(description="Replay lag at its last check.")
    error: str | None


@strawberry.type
class Health:
    status: str
    database: DatabaseHealth
    version: str
    replicas: list[ReplicaHealth] = strawberry.field(
        description="Read replicas (database.read_replica_urls); their state never degrades "
        "status: reads fall back to the primary."
    )


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
        replicas = [
            ReplicaHealth(
                name=r["name"],
                in_rotation=r["inRotation"],
                lag_seconds=r["lagSeconds"],
                error=r["error"],
            )
            for r in info.context.db.replicas.describe()
        ]
        return Health(
            status="ok" if database.ok else "degraded",
            database=database,
            version=__version__,
            replicas=replicas,
        )
