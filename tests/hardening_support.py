"""Helpers for the hardening tests: apps with other settings, and posting GraphQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from gql_api.db import Database
from gql_api.web.app import create_app
from tests.conftest import make_settings


@asynccontextmanager
async def app_client(db: Database, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for an app on the shared test database with other settings."""
    settings = make_settings(db.url, **overrides)
    app = create_app(settings, db)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40001))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


async def post(
    http: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    token: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await http.post(
        "/graphql", json={"query": query, "variables": variables or {}, **extra}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
