"""``gql-api serve --workers 2``: real uvicorn workers share their metrics through
prometheus-client's multi-process files, so any worker's /metrics counts every request."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gql_api.db import Database
from tests.server_support import free_port, server_env


def _requests_total(exposition: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == "gql_api_graphql_requests_total"
        and sample.labels.get("operation") == "Probe"
    )


@pytest.mark.slow
async def test_metrics_are_summed_over_workers(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = server_env(
        database_url,
        USER_SERVICE_ADMIN_PASSWORD="Workers-Admin-42-orbit",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
    )
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gql_api.cli",
            "serve",
            "--workers",
            "2",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--cleanup-interval",
            "0",
            "--log-level",
            "warning",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        # New connection per request: the kernel spreads them over both workers.
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as http:
            for _ in range(300):
                if server.poll() is not None:
                    pytest.fail(f"serve exited: {server.stderr.read() if server.stderr else ''}")
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                pytest.fail("server did not become ready")
            for _ in range(20):
                probe = {"query": "query Probe { health { status } }"}
                body = (await http.post("/graphql", json=probe)).json()
                assert body["data"]["health"]["status"] == "ok"
            totals = {_requests_total((await http.get("/metrics")).text) for _ in range(6)}
        assert totals == {20.0}
        assert {p.name.split("_")[0] for p in (tmp_path / "metrics").glob("*.db")} >= {"counter"}
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if server.stderr is not None:
            server.stderr.close()
