"""``create_app(settings)``: FastAPI with GraphQL at ``/graphql``, ``/healthz`` and ``/readyz``."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.fastapi import GraphQLRouter

from gql_api import __version__, migrations
from gql_api.config import Settings, ensure_jwt_secret, load_settings
from gql_api.db import Database
from gql_api.graphql.context import Context, make_context
from gql_api.graphql.schema import build_schema

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"


class RequestIdMiddleware:
    """Takes ``X-Request-ID`` (or makes one), keeps it on the request and returns it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = incoming if incoming and len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)


def secret_file_for(settings: Settings) -> Path:
    return settings.database.data_dir.expanduser().resolve().parent / "jwt_secret"


def create_app(settings: Settings | None = None, db: Database | None = None) -> FastAPI:
    """The ASGI app. With ``db`` given the caller owns it; otherwise the app opens and closes one."""
    settings = settings or load_settings()
    ensure_jwt_secret(settings, secret_file_for(settings))
    state: dict[str, Any] = {"db": db}
    head = migrations.head_revision()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = state["db"] is None
        if owned:
            state["db"] = Database.from_settings(settings)
        log.info("gql_api %s serving on %s", __version__, state["db"].describe())
        try:
            yield
        finally:
            if owned:
                await state["db"].dispose()

    async def get_context(request: Request, response: Response) -> Context:
        return await make_context(request, response, settings=settings, db=state["db"])

    app = FastAPI(
        title="gql_api",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.holder = state
    router: GraphQLRouter[Context, None] = GraphQLRouter(
        build_schema(),
        context_getter=get_context,
        graphql_ide="graphiql" if settings.graphiql_enabled else None,
        subscription_protocols=(),
    )
    app.include_router(router, prefix="/graphql")

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
        return JSONResponse({"status": "ready", "latencyMs": round(latency, 3), "revision": current})

    app.add_middleware(RequestIdMiddleware)
    return app


def app_factory() -> FastAPI:
    """For ``uvicorn --factory gql_api.app:app_factory`` (and each worker of ``serve``)."""
    return create_app(load_settings())
