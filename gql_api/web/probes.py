"""The probes and the scrape: ``/healthz`` (the process), ``/readyz`` (the database and its
migrations, replicas reported) and ``/metrics`` (Prometheus, guarded by
gql_api.observability.metrics_exposure)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.requests import Request
from starlette.responses import Response

from gql_api.config import Settings
from gql_api.db import Database, migrations
from gql_api.observability import metrics
from gql_api.observability.metrics_exposure import public_refusal


def add_probes(app: FastAPI, settings: Settings, state: dict[str, Any]) -> None:
    head = migrations.head_revision()

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        """The process is alive; says nothing of the database."""
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        """Ready for traffic: the database answers and its schema is at the migrations' head."""
        database: Database | None = state["db"]
        if database is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        try:
            latency = await database.ping()
            current = await migrations.current_revision(database.engine)
        except Exception as exc:  # unreachable database: not ready, and say why in short
            return JSONResponse(
                {"status": "unavailable", "database": exc.__class__.__name__}, status_code=503
            )
        if current != head:
            return JSONResponse(
                {"status": "migrations pending", "current": current, "head": head},
                status_code=503,
            )
        ready: dict[str, Any] = {
            "status": "ready",
            "latencyMs": round(latency, 3),
            "revision": current,
        }
        if database.replicas:
            # Reported, never failing readiness: reads fall back to the primary without them.
            ready["replicas"] = database.replicas.describe()
        return JSONResponse(ready)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics(request: Request) -> Response:
        """Prometheus exposition; with several workers, summed over all of them. Who may read
        it on this port: gql_api.observability.metrics_exposure."""
        refusal = public_refusal(settings, request.headers.get("authorization"))
        if refusal is not None:
            return refusal
        return Response(await metrics.render(state["db"]), media_type=metrics.CONTENT_TYPE)
