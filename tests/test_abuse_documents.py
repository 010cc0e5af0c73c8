"""Hostile GraphQL documents sent to a real uvicorn server in production mode: each answered
quickly (refused with a code or executed), no "Did you mean" for anonymous callers, one
password operation per document, and caches that do not grow with what clients send.

Every request has a timeout: a document that pins the worker fails the test instead of hanging.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest
from sqlalchemy import text

from gql_api.db import Database
from tests.conftest import MadeUser, insert_user
from tests.server_support import RunningServer, server_env, uvicorn_server

TIMEOUT = 5.0  # seconds; a small query answers in milliseconds


@pytest.fixture(scope="module")
def production(
    database_url: str, db: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    # ``db`` migrates the database the server uses. Production: suggestions and introspection
    # for admins only.
    log = tmp_path_factory.mktemp("abuse") / "server.log"
    env = server_env(database_url, USER_SERVICE_ENV="production")
    with uvicorn_server(env, log) as running:
        yield running


@pytest.fixture(scope="module")
def development(
    database_url: str, db: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    log = tmp_path_factory.mktemp("abuse-dev") / "server.log"
    with uvicorn_server(server_env(database_url), log) as running:
        yield running


def post(
    server: RunningServer,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.post(
        f"{server.url}/graphql",
        json={"query": query, "variables": variables or {}},
        headers=headers,
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def codes(body: dict[str, Any]) -> list[str | None]:
    return [e.get("extensions", {}).get("code") for e in body.get("errors") or []]


def doubling(depth: int) -> str:
    """Each fragment spreads the next one twice: 2^depth fields once written out."""
    fragments = [f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(depth)]
    fragments.append(f"fragment F{depth} on Query {{ health {{ status }} }}")
    return "query { ...F0 } " + " ".join(fragments)


def assert_still_serving(server: RunningServer) -> None:
    assert post(server, "{ __typename }") == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize("depth", [10, 20, 40, 60])
def test_fragment_doubling_is_answered_at_once(production: RunningServer, depth: int) -> None:
    body = post(production, doubling(depth))  # over TIMEOUT: the worker was pinned
    assert codes(body) == ["TOO_MANY_FIELDS"], body
    assert body["errors"][0]["extensions"]["fields"] == 2 ** (depth + 1)  # health, status
    assert_still_serving(production)


def get(server: RunningServer, query: str) -> dict[str, Any]:
    response = httpx.get(
        f"{server.url}/graphql",
        params={"query": query},
        headers={"Accept": "application/json"},
        timeout=TIMEOUT,
    )
    body: dict[str, Any] = response.json()
    return body


def test_fragment_documents_over_get(production: RunningServer) -> None:
    assert codes(get(production, doubling(60))) == ["TOO_MANY_FIELDS"]
    # A cycle through a field: nothing may walk it expanded (validation names the cycle).
    cycle = "{ ...A } fragment A on Query { health { ...B } } fragment B on Health { status ...B }"
    body = get(production, cycle)
    assert codes(body) == ["GRAPHQL_VALIDATION_FAILED"], body
    assert "within itself" in body["errors"][0]["message"]
    # 2^8 health selections merge into one field: allowed, and answered once.
    assert get(production, doubling(7)) == {"data": {"health": {"status": "ok"}}}
    assert_still_serving(production)


def test_repeated_field_is_refused_before_validation(production: RunningServer) -> None:
    # 397 times the same field: graphql-core's overlapping-fields rule compares each pair
    # (2.4 s of CPU before the limits); now refused from a linear count of the fields.
    query = "{ " + " ".join(["health { version }"] * 397) + " }"
    started = time.perf_counter()
    body = post(production, query)
    elapsed = time.perf_counter() - started
    assert body["errors"][0]["extensions"] == {
        "code": "TOO_MANY_FIELDS",
        "fields": 794,
        "maxFields": 500,
    }
    assert elapsed < 0.5, elapsed
    # Within the field limit, a field repeated at one place more than 20 times.
    body = post(production, "{ " + " ".join(["health { version }"] * 21) + " }")
    assert body["errors"][0]["extensions"] == {
        "code": "TOO_MANY_REPEATED_FIELDS",
        "repeats": 21,
        "maxRepeats": 20,
    }


def repeated_users(repeats: list[int]) -> str:
    """Response key ``u<i>`` selected ``repeats[i]`` times, 5 fields each time."""
    selection = "users(first: 1) { edges { node { id email } } }"
    keys = [f"u{i}: {selection}" for i, count in enumerate(repeats) for _ in range(count)]
    return "{ " + " ".join(keys) + " }"


def crowded_fragments(places: int, spreads: int) -> str:
    """``places`` selections of ``health``, each spreading ``spreads`` distinct fragments."""
    selections = " ".join(
        f"p{k}: health {{ " + " ".join(f"...F{k}x{i}" for i in range(spreads)) + " }"
        for k in range(places)
    )
    fragments = " ".join(
        f"fragment F{k}x{i} on Health {{ a{i}: version b{i}: status }}"
        for k in range(places)
        for i in range(spreads)
    )
    return f"{{ {selections} }} {fragments}"


def test_worst_document_within_the_limits_is_cheap(production: RunningServer) -> None:
    # The most expensive documents found that pass every limit checked before validation:
    # 100 fragments (the definition limit), 20 spread into each of 5 places (the spread
    # limit), compared pairwise by graphql-core: 125-135 ms of parse, checks and validation
    # on a busy 2-core machine; 5 response keys selected 20 times each (the repeat limit) over
    # 500 fields (the field limit): about 40 ms. Both are then refused for their aliases.
    for query in (crowded_fragments(5, 20), repeated_users([20] * 5)):
        started = time.perf_counter()
        body = post(production, query)
        elapsed = time.perf_counter() - started
        assert codes(body) == ["TOO_MANY_ALIASES"], body  # validated, then refused
        assert elapsed < 1.0, elapsed
    assert codes(post(production, crowded_fragments(5, 21))) == ["TOO_MANY_FRAGMENTS"]
    body = post(production, repeated_users([21, 19, 20, 20, 20]))
    assert codes(body) == ["TOO_MANY_REPEATED_FIELDS"], body


def test_fragments_spread_into_one_place_are_bounded(production: RunningServer) -> None:
    spreads = " ".join(f"...F{i}" for i in range(21))
    fragments = " ".join(f"fragment F{i} on Health {{ a{i}: version }}" for i in range(21))
    body = post(production, f"{{ health {{ {spreads} }} }} {fragments}")
    assert codes(body) == ["TOO_MANY_FRAGMENTS"], body
    assert body["errors"][0]["extensions"]["spreads"] == 21


# --- "Did you mean" -----------------------------------------------------------------------

FOUND_KIND = "{ users(filter: { rol: ADMIN }) { totalCount } }"  # "...? Found: { rol: ADMIN }."
ENUM_VARIABLE = "query($r: Role) { users(filter: { role: $r }) { totalCount } }"
UNKNOWN_FIELD = "{ helth { status } }"


def suggestion_errors(server: RunningServer) -> list[str]:
    bodies = [
        post(server, FOUND_KIND),
        post(server, ENUM_VARIABLE, {"r": "ADMN"}),
        post(server, UNKNOWN_FIELD),
    ]
    messages = [e["message"] for body in bodies for e in body["errors"]]
    assert len(messages) == 3, bodies
    return messages


def test_no_suggestions_for_anonymous_callers_in_production(production: RunningServer) -> None:
    messages = suggestion_errors(production)
    assert not [m for m in messages if "Did you mean" in m], messages
    assert "not to include unknown field 'rol'" in messages[0]
    assert "Value 'ADMN' does not exist in 'Role' enum" in messages[1]


def test_suggestions_in_development(development: RunningServer) -> None:
    messages = suggestion_errors(development)
    assert all("Did you mean" in m for m in messages), messages


# --- cost: one decision whichever executor runs the query ---------------------------------

SESSIONS = "sessions { id userAgent ipAddress expiresAt createdAt }"
HEAVY = f"users(first: $n) {{ edges {{ node {{ {SESSIONS} }} }} }}"


def test_variable_default_costs_the_same_in_both_executors(
    production: RunningServer, admin_token: str
) -> None:
    # users: 1 + n * (edges 1 + (node 1 + (sessions 1 + 10 (session cap) * 5 fields))) = 1 + 53n
    planned = f"query($n: Int = 10) {{ {HEAVY} }}"  # the planned executor takes it
    generic = f"query($n: Int = 10) {{ ...Heavy }} fragment Heavy on Query {{ {HEAVY} }}"
    for query in (planned, generic):
        body = post(production, query, token=admin_token)
        assert "errors" not in body, (query, body)
    for query in (planned.replace("= 10", "= 95"), generic.replace("= 10", "= 95")):
        body = post(production, query, token=admin_token)
        assert codes(body) == ["QUERY_TOO_COMPLEX"], body
        assert body["errors"][0]["extensions"]["cost"] == 1 + 53 * 95


# --- expensive mutations ------------------------------------------------------------------

LOGIN = 'login(input: {{ email: "{email}", password: "{password}" }}) {{ accessToken }}'


async def count_rows(db: Database, table: str) -> int:
    async with db.engine.connect() as conn:
        return int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


@pytest.fixture
async def member(db: Database) -> MadeUser:
    return await insert_user(db, email="member@example.com")


async def test_one_password_operation_per_document(
    production: RunningServer, db: Database, member: MadeUser
) -> None:
    wrong = LOGIN.format(email=member.email, password="wrong password")
    aliased = f"mutation {{ a: {wrong} b: {wrong} }}"
    through_fragment = (
        f"mutation {{ ...Twice }} fragment Twice on Mutation {{ a: {wrong} b: {wrong} }}"
    )
    for query in (aliased, through_fragment):
        body = post(production, query)
        assert codes(body) == ["TOO_MANY_EXPENSIVE_FIELDS"], body
    # Refused before any resolver: no failed sign-in was recorded, no session started.
    assert await count_rows(db, "login_attempts") == 0
    assert await count_rows(db, "user_sessions") == 0

    right = LOGIN.format(email=member.email, password=member.password)
    body = post(production, f"mutation {{ {right} }}")
    assert "errors" not in body, body
    assert body["data"]["login"]["accessToken"]


# --- memory -------------------------------------------------------------------------------


def rss(server: RunningServer) -> int:
    return int(psutil.Process(server.process.pid).memory_info().rss)


def test_distinct_large_documents_do_not_grow_the_worker(production: RunningServer) -> None:
    assert_still_serving(production)
    before = rss(production)
    refusals = []
    # 40 distinct one-megabyte documents, mostly a comment.
    for i in range(40):
        query = f"# {i}\n" + "#" * (1000 * 1000) + "\n{ __typename }"
        refusals += codes(post(production, query))
    # 100 distinct documents of 1,900 tokens (about 1 MB each once parsed and validated).
    for i in range(100):
        fields = " ".join(f"a{i}x{j}: __typename" for j in range(630))
        refusals += codes(post(production, "{ " + fields + " }"))
    assert_still_serving(production)
    grown = rss(production) - before
    # Kept by text, these were about 40 x 2 MB + 100 x 1 MB.
    assert grown < 60 * 1024 * 1024, grown / 1024 / 1024
    assert rss(production) < 250 * 1024 * 1024
    # The first are refused before parsing; the others parsed, kept in a cache bounded by
    # bytes, and refused before validation.
    assert refusals == ["QUERY_TOO_LARGE"] * 40 + ["TOO_MANY_FIELDS"] * 100
