"""``/metrics`` is not for everyone: hidden on the public port in production, served behind a
bearer token or on a listener of its own (127.0.0.1 by default) that ``gql-api serve`` runs,
summed over the workers. Operation names, chosen by clients, only become labels when their
document validated, and at most ``MAX_OPERATION_NAMES`` of them per process."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gql_api.db import Database
from gql_api.observability.metrics import MAX_OPERATION_NAMES
from tests.hardening_support import app_client
from tests.server_support import free_port, server_env

TOKEN = "metrics-" + "t" * 24
REQUESTS = "gql_api_graphql_requests_total"


def _requests_by_operation(exposition: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == REQUESTS:
                name = sample.labels["operation"]
                totals[name] = totals.get(name, 0.0) + sample.value
    return totals


# --- the public port, in process ---------------------------------------------------------------


async def test_production_hides_metrics_on_the_public_port(db: Database) -> None:
    async with app_client(db, env="production") as http:
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/metrics")).status_code == 404
        guessed = {"Authorization": f"Bearer {TOKEN}"}
        assert (await http.get("/metrics", headers=guessed)).status_code == 404


@pytest.mark.parametrize("env", ["production", "development"])
async def test_a_configured_token_is_required(db: Database, env: str) -> None:
    async with app_client(db, env=env, server={"metrics_token": TOKEN}) as http:
        assert (await http.get("/metrics")).status_code == 401
        for wrong in (f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN, "Bearer "):
            refused = await http.get("/metrics", headers={"Authorization": wrong})
            assert refused.status_code == 401, wrong
            assert refused.headers["www-authenticate"] == "Bearer"
        allowed = await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert allowed.status_code == 200
        assert "gql_api_graphql_requests_total" in allowed.text


async def test_development_keeps_public_metrics_unless_a_listener_is_configured(
    db: Database,
) -> None:
    async with app_client(db, env="development") as http:
        assert (await http.get("/metrics")).status_code == 200
    async with app_client(db, env="development", server={"metrics_port": free_port()}) as http:
        assert (await http.get("/metrics")).status_code == 404


def test_a_short_token_is_a_configuration_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gql_api.cli", "migrate", "history"],
        env=server_env("postgresql://127.0.0.1:1/none", USER_SERVICE_SERVER_METRICS_TOKEN="short"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "server.metrics_token" in result.stderr


# --- gql-api serve: the listener, across workers ----------------------------------------------


@contextmanager
def _serve(
    env: dict[str, str], cwd: Path, port: int, workers: int
) -> Iterator[subprocess.Popen[str]]:
    command = [
        sys.executable,
        "-m",
        "gql_api.cli",
        "serve",
        "--workers",
        str(workers),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-migrate",
        "--cleanup-interval",
        "0",
        "--log-level",
        "warning",
    ]
    log = (cwd / "serve.log").open("w", encoding="utf-8")
    server = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True
    )
    try:
        yield server
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)
        log.close()


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
async def test_serve_exposes_metrics_on_its_own_listener_summed_over_workers(
    db: Database, database_url: str, tmp_path: Path, workers: int
) -> None:
    port, metrics_port = free_port(), free_port()
    env = server_env(
        database_url,
        USER_SERVICE_ENV="production",
        USER_SERVICE_ADMIN_PASSWORD="Metrics-Admin-42-orbit",
        USER_SERVICE_SERVER_METRICS_PORT=str(metrics_port),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
    )
    public = f"http://127.0.0.1:{port}"
    listener = f"http://127.0.0.1:{metrics_port}/metrics"
    with _serve(env, tmp_path, port, workers) as server:
        # A new connection per request, so that the kernel spreads them over both workers.
        fresh = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=public, limits=fresh, timeout=10) as http:
            deadline = asyncio.get_running_loop().time() + 90
            while True:
                if server.poll() is not None:
                    pytest.fail("serve exited:\n" + (tmp_path / "serve.log").read_text())
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    pytest.fail("not ready:\n" + (tmp_path / "serve.log").read_text())
                await asyncio.sleep(0.1)

            assert (await http.get("/metrics")).status_code == 404
            for _ in range(20):
                body = (
                    await http.post("/graphql", json={"query": "query Probe { health { status } }"})
                ).json()
                assert body["data"]["health"]["status"] == "ok"
            rejected = [f"Bomb{uuid.uuid4().hex}" for _ in range(30)]
            for name in rejected:
                body = (
                    await http.post("/graphql", json={"query": f"query {name} {{ nope }}"})
                ).json()
                assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
            scrapes = [_requests_by_operation((await http.get(listener)).text) for _ in range(4)]
        assert {scrape.get("Probe") for scrape in scrapes} == {20.0}
        assert not set(rejected) & set(scrapes[-1])
        assert scrapes[-1]["rejected"] == 30

        # Many valid, distinct names on one connection (one worker): the label set stops
        # growing at the cap and the rest count as "other".
        flood = MAX_OPERATION_NAMES + 50
        async with httpx.AsyncClient(base_url=public, timeout=10) as http:
            for i in range(flood):
                query = f"query Name{i} {{ health {{ status }} }}"
                body = (await http.post("/graphql", json={"query": query})).json()
                assert "errors" not in body, body
            totals = _requests_by_operation((await http.get(listener)).text)
        named = [name for name in totals if name.startswith("Name")]
        assert len(named) <= MAX_OPERATION_NAMES
        assert totals["other"] >= flood - MAX_OPERATION_NAMES
        assert sum(totals[name] for name in named) + totals["other"] == flood

    assert server.returncode == 0, (tmp_path / "serve.log").read_text()
