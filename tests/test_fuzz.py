"""Fuzzing: schemathesis generates GraphQL operations from schema.graphql and sends them to a
live server (loopback, fixed seed, bounded examples); hypothesis drives odd inputs through HTTP.

Nothing may come back as a server error (HTTP 5xx or INTERNAL_SERVER_ERROR), every error must
carry a code, and every request must be answered within its timeout.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.server_support import REPO, RunningServer, server_env, uvicorn_server

SCHEMA = schemathesis.graphql.from_path(REPO / "schema.graphql")
EXAMPLES_PER_OPERATION = 15
REQUEST_TIMEOUT_S = 10


@pytest.fixture(scope="module")
def live_server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    log = tmp_path_factory.mktemp("fuzz") / "server.log"
    with uvicorn_server(server_env(database_url), log) as server:
        yield server


def assert_no_server_error(response: Any) -> None:
    assert response.status_code < 500, response.text
    content_type = response.headers.get("content-type", [""])  # schemathesis: lists of values
    if "json" in (content_type[0] if isinstance(content_type, list) else content_type):
        body = response.json()
        for error in body.get("errors") or []:
            code = (error.get("extensions") or {}).get("code")
            assert code is not None, error
            assert code != "INTERNAL_SERVER_ERROR", error


@pytest.mark.slow
@SCHEMA.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,  # a fixed seed: the same examples on every run
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_generated_operations_never_fail_the_server(
    case: Any, live_server: RunningServer, admin_token: str, db: Any
) -> None:
    for headers in ({}, {"Authorization": f"Bearer {admin_token}"}):
        response = case.call(
            base_url=f"{live_server.url}/graphql", headers=headers, timeout=REQUEST_TIMEOUT_S
        )
        assert_no_server_error(response)
