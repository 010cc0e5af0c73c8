"""Pool exhaustion and runaway statements against a real uvicorn: requests wait up to the pool
timeout and fail with a clear code, statements are cancelled by the statement timeout, nothing
deadlocks, and the server recovers at once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gql_api.db import Database
from tests.conftest import MadeUser
from tests.server_support import server_env, uvicorn_server

ME_WITH_PROFILE = "{ me { id profile { bio } } }"


async def _me(http: httpx.AsyncClient, token: str) -> tuple[float, dict[str, Any]]:
    started = time.monotonic()
    response = await http.post(
        "/graphql", json={"query": ME_WITH_PROFILE}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    return time.monotonic() - started, response.json()


def _codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors") or []]


async def _pool_waits(http: httpx.AsyncClient) -> float:
    response = await http.get("/metrics")
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "gql_api_db_pool_wait_count":
                return float(sample.value)
    raise AssertionError("no gql_api_db_pool_wait_count in /metrics")


@pytest.mark.slow
async def test_pool_exhaustion_and_statement_timeout(
    database_url: str, db: Database, user: MadeUser, user_token: str, tmp_path: Path
) -> None:
    env = server_env(
        database_url,
        USER_SERVICE_DATABASE_MAXOPENCONNS="2",
        USER_SERVICE_DATABASE_MAXIDLECONNS="2",
        USER_SERVICE_DATABASE_POOL_TIMEOUT="1s",
        USER_SERVICE_DATABASE_STATEMENT_TIMEOUT="2s",
    )
    locker = await asyncpg.connect(database_url)
    try:
        with uvicorn_server(env, tmp_path / "server.log") as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                warm = await _me(http, user_token)
                assert _codes(warm[1]) == [], warm
                # Hold a lock that every profile read waits for: each request that gets that far
                # keeps one of the two pooled connections busy.
                transaction = locker.transaction()
                await transaction.start()
                await locker.execute("LOCK TABLE user_profiles IN ACCESS EXCLUSIVE MODE")
                results = await asyncio.gather(*[_me(http, user_token) for _ in range(6)])
                await transaction.rollback()

                codes = [tuple(_codes(body)) for _, body in results]
                # Two requests held the connections until the statement timeout cancelled them...
                assert codes.count(("QUERY_TIMEOUT",)) >= 1, codes
                # ...the others waited the pool timeout and were told the server is busy.
                assert codes.count(("SERVICE_UNAVAILABLE",)) >= 1, codes
                assert set(codes) <= {("QUERY_TIMEOUT",), ("SERVICE_UNAVAILABLE",)}, codes
                assert max(elapsed for elapsed, _ in results) < 10, results
                for _elapsed, body in results:
                    for error in body["errors"]:
                        assert "Traceback" not in error["message"]
                # Nothing deadlocked: the very next request is served normally, without waiting
                # for a connection (the pool's wait counter does not move; no wall-clock bound).
                waits_before = await _pool_waits(http)
                _elapsed, body = await _me(http, user_token)
                assert _codes(body) == [] and body["data"]["me"]["id"] == str(user.id)
                assert await _pool_waits(http) == waits_before
            assert server.process.poll() is None
    finally:
        await locker.close()
