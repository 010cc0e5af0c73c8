"""Bad input at the HTTP edge, sent to a real uvicorn: each answered with a 4xx and a clear
error, and the server keeps serving."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.server_support import RunningServer, server_env, uvicorn_server


@pytest.fixture(scope="module")
def server(
    database_url: str, db: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    # ``db`` migrates the database the server will use.
    log = tmp_path_factory.mktemp("edge") / "server.log"
    with uvicorn_server(server_env(database_url), log) as running:
        yield running


CASES = [
    ("malformed JSON", b'{"query": "{ health { status } }"', "application/json"),
    (
        "invalid UTF-8",
        b'{"query": "{ health { status } }", "variables": {"x": "\xff\xfe"}}',
        "application/json",
    ),
    (
        "deeply nested variables",
        b'{"query": "{ health { status } }", "variables": {"x": '
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}}",
        "application/json",
    ),
    ("JSON that is not an object", b'"just a string"', "application/json"),
    ("query of the wrong type", b'{"query": 42}', "application/json"),
    (
        "variables of the wrong type",
        b'{"query": "{ health { status } }", "variables": [1, 2]}',
        "application/json",
    ),
    ("text content type", b'{"query": "{ health { status } }"}', "text/plain"),
    (
        "form content type",
        b"query=%7B+health+%7B+status+%7D+%7D",
        "application/x-www-form-urlencoded",
    ),
    ("no content type", b'{"query": "{ health { status } }"}', ""),
    (
        "10 MB body",
        b'{"query": "{ health { status } }", "variables": {"x": "'
        + b"a" * (10 * 1024 * 1024)
        + b'"}}',
        "application/json",
    ),
    ("empty body", b"", "application/json"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "body", "content_type"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_a_4xx_and_the_server_keeps_serving(
    server: RunningServer, name: str, body: bytes, content_type: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        response = http.post("/graphql", content=body, headers=headers)
        assert 400 <= response.status_code < 500, (name, response.status_code, response.text[:300])
        assert "Traceback" not in response.text
        assert response.text.strip(), "a clear error, not an empty answer"
        healthy = http.post("/graphql", json={"query": "{ health { status } }"})
        assert healthy.json() == {"data": {"health": {"status": "ok"}}}
    assert server.process.poll() is None
    assert "Traceback" not in server.log(), server.log()
