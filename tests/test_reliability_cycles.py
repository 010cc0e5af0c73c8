"""An answered request is freed by reference counting, its errors too: it leaves no reference
cycle for the cyclic collector. A traceback holds the frames it passed through, and those hold
the error (a stage keeps it in its result), so a refused request used to wait for the collector
with its body and document in it: a stream of refused one-megabyte documents grew the worker
by up to 88 MB. Without cycles the collector can run seldom, which is what lets it stay out of
the way of the requests in flight (gql_api.web.lifespan)."""

from __future__ import annotations

import asyncio
import gc
import hashlib
from typing import Any

import orjson
import pytest

LONG = "# a comment\n" + "#" * 1_000_000 + "\n{ __typename }"
CASES: dict[str, tuple[bytes, bool]] = {  # the body, and whether it carries the admin's token
    "a document over the length limit": (orjson.dumps({"query": LONG}), False),
    "variables of the wrong type": (
        orjson.dumps(
            {
                "query": "query ($f: Int!) { users(first: $f) { totalCount } }",
                "variables": {"f": "x" * 1000},
            }
        ),
        True,
    ),
    "an error in a resolver": (
        orjson.dumps({"query": '{ users(first: 2, after: "garbage") { totalCount } }'}),
        True,
    ),
    "a document that does not validate": (orjson.dumps({"query": "{ nope }"}), False),
    "a document over the depth limit": (
        orjson.dumps({"query": "{ me { " + "profile { user { " * 12 + "id" + " } }" * 12 + " } }"}),
        True,
    ),
    "a body that is not JSON": (b'{"query": "{ me { id } }", ', False),
    "an unknown persisted query": (
        orjson.dumps(
            {
                "extensions": {
                    "persistedQuery": {"version": 1, "sha256Hash": hashlib.sha256(b"x").hexdigest()}
                }
            }
        ),
        False,
    ),
    "a users page": (
        orjson.dumps(
            {"query": "{ users(first: 5) { edges { node { id email profile { bio } } } } }"}
        ),
        True,
    ),
}


async def _post(app: Any, body: bytes, token: str | None) -> int:
    """One POST /graphql straight to the ASGI app (no client whose own objects would count)."""
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/graphql", "raw_path": b"/graphql", "query_string": b"",
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 40002),
        "server": ("127.0.0.1", 80),
    }  # fmt: skip
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    status = 0

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.Event().wait()  # never disconnects
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


@pytest.mark.parametrize("case", list(CASES))
async def test_an_answered_request_leaves_no_reference_cycle(
    app: Any, admin_token: str, case: str
) -> None:
    body, signed_in = CASES[case]
    token = admin_token if signed_in else None
    for _ in range(2):  # what a first request builds and keeps (caches, plans)
        await _post(app, body, token)
    gc.collect()
    gc.disable()
    try:
        statuses = {await _post(app, body, token) for _ in range(3)}
        found = gc.collect()  # what only the cyclic collector could free
    finally:
        gc.enable()
    assert statuses <= {200, 400}, statuses
    assert found == 0, f"{case}: {found} objects in reference cycles"
