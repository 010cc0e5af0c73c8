# ruff: noqa: E501  (GraphQL documents read best on one line each)
"""The planned executor answers every query exactly as graphql-core does (issue 15).

Documents are generated from ``schema.graphql`` by hypothesis-graphql (root fields, nested
selections, arguments of every input kind) and then reshaped the way clients write them:
named and inline fragments (reused, nested), ``@skip``/``@include`` with literals and
variables, ``__typename``, aliases and merged fields, arguments moved into variables (sent, or
left to a default). Each document goes through two apps on one seeded database, one with
``graphql.fast_execution`` on and one with it off, as an anonymous caller, a plain user and an
admin: the HTTP status and the raw response bytes (data, errors with message, path and code,
key order) must be identical, and ``gql_api_graphql_executions_total{executor="planned"}`` at
/metrics must show that the planned app answered every request that got past validation and
limits. Hand-written cases cover what the generator does not write.

``pytest -m deep`` runs the generator for thousands of examples instead of a few hundred.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import graphql
import httpx
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis_graphql import queries

from gql_api.db import Database
from tests.conftest import MadeUser, insert_user, make_settings, session_token
from tests.document_reshaping import Generated, Reshape, rebuild
from tests.hardening_support import app_client

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"
CALLERS = ("anonymous", "user", "admin")
# Values that differ between two runs of the same query, left out of generation:
VOLATILE = {
    # Each app has its own pool, so its counters and connection figures differ.
    ("Query", "dbPoolStats"),
    ("Query", "dbConnections"),
    # pg_stat_statements, pg_stat_activity and pg_locks change with every statement either app sends.
    ("Query", "slowQueries"),
    ("Query", "dbActivity"),
    ("Query", "dbLocks"),
    # The database's size moves with every write (sessions touched, audit rows).
    ("Query", "dbSize"),
    # A timing, measured per request.
    ("DatabaseHealth", "latencyMs"),
    # Touched by the requests signed in with the session.
    ("Session", "lastUsedAt"),
    ("MfaFactor", "lastUsedAt"),
}
# Codes of documents refused before execution (parse, validation, limits): neither executor runs.
REFUSED = {
    "GRAPHQL_PARSE_FAILED",
    "GRAPHQL_VALIDATION_FAILED",
    "QUERY_TOO_COMPLEX",
    "QUERY_TOO_DEEP",
    "QUERY_TOO_LARGE",
    "TOO_MANY_ALIASES",
    "TOO_MANY_EXPENSIVE_FIELDS",
    "TOO_MANY_FIELDS",
    "TOO_MANY_FRAGMENTS",
    "TOO_MANY_REPEATED_FIELDS",
}
IDS = ("@ADMIN", "@USER", "@OTHER", "not-a-uuid", "00000000-0000-0000-0000-000000000000")
PLANNED = re.compile(r'^gql_api_graphql_executions_total\{executor="planned"\} (\S+)$', re.M)
REQUEST_ID = re.compile(rb',?"requestId":"[^"]*"')


def _generation_schema() -> graphql.GraphQLSchema:
    """schema.graphql without mutations, subscriptions and the volatile fields."""
    document = graphql.parse(SCHEMA_FILE.read_text())
    kept: list[Any] = []
    for definition in document.definitions:
        if isinstance(definition, graphql.ObjectTypeDefinitionNode):
            if definition.name.value in ("Mutation", "Subscription"):
                continue
            fields = tuple(
                f
                for f in definition.fields or ()
                if (definition.name.value, f.name.value) not in VOLATILE
            )
            definition = rebuild(definition, fields=fields)
        kept.append(definition)
    return graphql.build_ast_schema(graphql.DocumentNode(definitions=tuple(kept)))


SCHEMA = _generation_schema()
DATETIMES = [
    "2020-01-01T00:00:00+00:00",
    "2999-01-01T00:00:00Z",
    "2024-06-01T12:00:00",
    "yesterday",
]
CUSTOM_SCALARS: dict[str, st.SearchStrategy[graphql.ValueNode]] = {
    "DateTime": st.sampled_from(DATETIMES).map(lambda v: graphql.StringValueNode(value=v)),
    "JSON": st.just(graphql.StringValueNode(value="x")),
}


@st.composite
def generated(draw: Callable[[st.SearchStrategy[Any]], Any]) -> Generated:
    document = draw(
        queries(SCHEMA, custom_scalars=CUSTOM_SCALARS, print_ast=lambda d: d, allow_x00=False)  # type: ignore[arg-type]
    )
    reshape = Reshape(draw, SCHEMA, IDS)
    return Generated(graphql.print_ast(reshape.document(document)), reshape.variables)


@dataclass
class World:
    planned: httpx.AsyncClient
    generic: httpx.AsyncClient
    tokens: dict[str, str | None]
    ids: dict[str, str]


@pytest.fixture
async def world(db: Database) -> AsyncIterator[World]:
    """Seeded once per test: an admin, a user with a profile and two sessions, three others."""
    settings = make_settings(db.url)
    admin = await insert_user(db, email="admin@example.com", role="admin", first_name="Ada")
    user = await insert_user(db, email="user@example.com", last_name="Zed")
    others: list[MadeUser] = [
        await insert_user(db, email=f"u{i}@example.com", last_name=f"L{i}") for i in range(3)
    ]
    async with db.engine.begin() as conn:
        from sqlalchemy import text

        await conn.execute(
            text(
                "UPDATE user_profiles SET bio = 'hello', timezone = 'UTC', preferences = '{\"a\": [1]}'"
            )
        )
    tokens: dict[str, str | None] = {
        "anonymous": None,
        "user": await session_token(db, settings, user),
        "admin": await session_token(db, settings, admin),
    }
    await session_token(db, settings, user)  # a second session of the user
    ids = {"@ADMIN": str(admin.id), "@USER": str(user.id), "@OTHER": str(others[0].id)}
    async with (
        app_client(db, graphql={"fast_execution": True}) as planned,
        app_client(db, graphql={"fast_execution": False}) as generic,
    ):
        yield World(planned, generic, tokens, ids)


async def _planned_count(http: httpx.AsyncClient) -> float:
    match = PLANNED.search((await http.get("/metrics")).text)
    return float(match.group(1)) if match else 0.0


def _fill(text: str, ids: dict[str, str]) -> str:
    for placeholder, value in ids.items():
        text = text.replace(placeholder, value)
    return text


async def _compare(
    world: World, query: str, variables: dict[str, Any], operation: str | None = None
) -> list[dict[str, Any]]:
    """Posts the document to both apps as every caller; returns the bodies (asserting equality
    and that the planned app ran every executed request)."""
    query = _fill(query, world.ids)
    variables = json.loads(_fill(json.dumps(variables), world.ids))
    # One process, one metrics registry: the count is the two apps' together, and only the app
    # with the planned executor can add to it.
    before = await _planned_count(world.planned)
    bodies, executed = [], 0
    for caller in CALLERS:
        token = world.tokens[caller]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body = {"query": query, "variables": variables, "operationName": operation}
        a = await world.planned.post("/graphql", json=body, headers=headers)
        b = await world.generic.post("/graphql", json=body, headers=headers)
        # A masked internal error carries its request's id; everything else must match byte for byte.
        assert (a.status_code, REQUEST_ID.sub(b"", a.content)) == (
            b.status_code,
            REQUEST_ID.sub(b"", b.content),
        ), (caller, query, variables)
        parsed = a.json()
        codes = {(e.get("extensions") or {}).get("code") for e in parsed.get("errors") or ()}
        executed += not codes & REFUSED
        bodies.append(parsed)
    assert await _planned_count(world.planned) - before == executed, (query, bodies)
    return bodies


def _generated_test(examples: int) -> Callable[..., Any]:
    @seed(15)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        # The seeded world is read by every example on purpose (the test compares answers).
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(example=generated())
    async def check(world: World, example: Generated) -> None:
        await _compare(world, example.query, example.variables)

    return check


test_generated_documents_answer_alike = _generated_test(200)
test_generated_documents_answer_alike_deep = pytest.mark.deep(_generated_test(3000))


# What the generator does not write. Each runs as every caller, on both apps (see _compare).
HAND_WRITTEN: list[tuple[str, dict[str, Any]]] = [
    # Errors at depth and null propagation: a nullable root field, a non-null root field (data
    # null), both in one document, and a bad cursor under a connection.
    ('{ me { id } user(id: "@OTHER") { email sessions { id } } }', {}),
    (
        'query Two { a: user(id: "@OTHER") { email } b: user(id: "not-a-uuid") { email } users(first: 2) { totalCount } }',
        {},
    ),
    ('{ me { email } users(first: 1, after: "garbage") { totalCount } }', {}),
    (
        "{ users(first: 3) { edges { cursor node { email sessions { id current } mfa { enabled } profile { bio } } } } }",
        {},
    ),
    # Directive combinations, on fields, inline fragments and spreads, with literals and variables.
    (
        "query D($a: Boolean!, $b: Boolean!) { me { id @include(if: $a) @skip(if: $b) email @skip(if: $a) ... on User @include(if: $b) { firstName } ... @skip(if: $a) { lastName } ...F @include(if: true) } } fragment F on User { role @include(if: $a) status @skip(if: false) }",
        {"a": True, "b": False},
    ),
    (
        "query D($a: Boolean!, $b: Boolean!) { me { id @include(if: $a) @skip(if: $b) email @skip(if: $a) } }",
        {"a": False, "b": True},
    ),
    (
        "query D($a: Boolean!, $b: Boolean!) { me { id @include(if: $a) @skip(if: $b) email @skip(if: $a) } }",
        {"a": True, "b": True},
    ),
    # A key whose position depends on a variable: first written conditionally, then plainly.
    ("query K($a: Boolean!) { me { email @include(if: $a) id email } }", {"a": False}),
    ("query K($a: Boolean!) { me { email @include(if: $a) id email } }", {"a": True}),
    # A nullable `if` variable: its default, and an explicit null (refused by graphql-core).
    ("query N($a: Boolean = true) { me { id @include(if: $a) email } }", {}),
    ("query N($a: Boolean = true) { me { id @include(if: $a) email } }", {"a": None}),
    # Fragments on the same type, nested and reused, and merged sub-selections.
    (
        '{ me { ...U profile { ...P } } user(id: "@USER") { ...U ...V } } fragment U on User { id email ...V } fragment V on User { firstName id profile { ...P timezone } } fragment P on Profile { bio }',
        {},
    ),
    ("{ me { id profile { bio } } me { email profile { timezone } } }", {}),
    # The same field twice with different arguments.
    (
        "{ a: users(first: 1) { edges { node { email } } } b: users(first: 2, orderBy: {field: EMAIL, direction: ASC}) { totalCount edges { node { email } } } }",
        {},
    ),
    # Input-object variables with defaults (default, replaced, nulled) and enum arguments.
    (
        'query F($f: UserFilter = {role: USER, search: "u"}, $o: UserOrder = {field: LAST_NAME}) { users(first: 5, filter: $f, orderBy: $o) { totalCount edges { node { email lastName } } } }',
        {},
    ),
    (
        'query F($f: UserFilter = {role: USER, search: "u"}, $o: UserOrder = {field: LAST_NAME}) { users(first: 5, filter: $f, orderBy: $o) { totalCount edges { node { email lastName } } } }',
        {"f": {"status": "ACTIVE", "createdAfter": "2000-01-01T00:00:00Z"}, "o": None},
    ),
    ('{ users(first: 2, filter: {search: "%%%%"}) { totalCount } }', {}),
    ('{ users(first: 2, filter: {createdBefore: "not a date"}) { totalCount } }', {}),
    (
        "query O($d: OrderDirection = ASC) { users(last: 2, orderBy: {direction: $d}) { pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor } } }",
        {},
    ),
    # __typename everywhere, at the root too.
    (
        "{ __typename users(first: 1) { __typename edges { __typename node { __typename profile { __typename } mfa { __typename } } } pageInfo { __typename } } }",
        {},
    ),
    (
        '{ auditLogs(first: 3, filter: {action: "x"}) { totalCount edges { node { action } } pageInfo { hasNextPage } } }',
        {},
    ),
]


async def test_one_operation_of_several_answers_alike(world: World) -> None:
    """A document of several operations: the chosen one's conditions decide, the other's not."""
    document = (
        "query A($a: Boolean!) { me { id @include(if: $a) ...F } }"
        " query B($b: Boolean!) { me { email @skip(if: $b) ...F } }"
        " fragment F on User { lastName }"
    )
    for operation, variables in (("A", {"a": True}), ("B", {"b": False}), ("B", {"b": True})):
        bodies = await _compare(world, document, variables, operation)
        assert bodies[1]["data"]["me"] is not None


@pytest.mark.parametrize(("query", "variables"), HAND_WRITTEN)
async def test_hand_written_documents_answer_alike(
    world: World, query: str, variables: dict[str, Any]
) -> None:
    await _compare(world, query, variables)


async def test_errors_at_depth_answer_alike(world: World, db: Database) -> None:
    """Two tables gone for the length of this test (renamed, then back): the profiles' loader
    fails under every user of a page (a nullable field: partial data, one error per user), and
    the second factor's resolver fails under a non-null field (null up to the nearest nullable
    parent, or ``data`` null). The schema's constraints keep stored data from failing deeper."""
    from sqlalchemy import text

    renames = [("user_profiles", "t15a_profiles_gone"), ("user_mfa_factors", "t15a_factors_gone")]
    async with db.engine.begin() as conn:
        for name, gone in renames:
            await conn.execute(text(f"ALTER TABLE {name} RENAME TO {gone}"))
    try:
        page = await _compare(
            world, "{ users(first: 3) { edges { node { email profile { bio } } } } }", {}
        )
        paths = [error["path"] for error in page[2]["errors"]]
        assert paths == [["users", "edges", i, "node", "profile"] for i in range(3)], page[2]
        assert [edge["node"]["profile"] for edge in page[2]["data"]["users"]["edges"]] == [None] * 3
        # One failing statement per document: two failing at once race each other, and the
        # generic executor itself then answers one or the other (measured: 14 to 1 in 15 runs).
        mine = await _compare(world, "{ me { email mfa { enabled } } }", {})
        assert mine[1]["data"] == {"me": None}, mine[1]
        both = await _compare(
            world,
            "{ me { email } users(first: 1) { totalCount edges { node { email mfa { enabled } } } } }",
            {},
        )
        assert both[2]["data"] is None and len(both[2]["errors"]) == 1, both[2]
        assert both[2]["errors"][0]["path"] == ["users", "edges", 0, "node", "mfa"], both[2]
    finally:
        async with db.engine.begin() as conn:
            for name, gone in renames:
                await conn.execute(text(f"ALTER TABLE {gone} RENAME TO {name}"))


async def test_relations_postgresql_writes_answer_alike(world: World, db: Database) -> None:
    """Profiles and sessions whose selection reads only columns are written as JSON by
    PostgreSQL under the planned executor (gql_api.repositories.json_text), and read as rows
    by the generic one: awkward stored values must still give the same bytes."""
    from sqlalchemy import text

    from tests.users_support import count_statements

    awkward = "".join(chr(c) for c in range(1, 128)) + "é😀\u2028\U0010ffff"
    async with db.engine.begin() as conn:
        await conn.execute(
            text("UPDATE user_profiles SET bio = :bio, locale = NULL, timezone = 'Europe/Paris'"),
            {"bio": awkward},
        )
        await conn.execute(
            text(
                "UPDATE user_sessions SET user_agent = :agent, ip_address = '2001:db8::1/64', "
                "expires_at = 'infinity' WHERE user_id = :user"
            ),
            {"agent": awkward, "user": world.ids["@USER"]},
        )
        await conn.execute(
            text(
                "UPDATE user_sessions SET ip_address = '192.0.2.1', "
                "expires_at = date_trunc('second', now()) + interval '1 day' "
                "WHERE user_id = :user"
            ),
            {"user": world.ids["@ADMIN"]},
        )
    page = (
        "{ users(first: 5) { edges { node { email profile { __typename bio timezone locale } "
        "sessions { __typename id userAgent ipAddress expiresAt createdAt } } } } }"
    )
    with count_statements(db) as statements:
        bodies = await _compare(world, page, {})
    written = [s for s in statements if "string_agg" in s or "concat(" in s]
    assert len(written) == 2, statements  # the planned app's two relations, for the admin
    nodes = [edge["node"] for edge in bodies[2]["data"]["users"]["edges"]]
    assert {node["profile"]["bio"] for node in nodes} == {awkward}
    sessions = [s for node in nodes for s in node["sessions"]]
    assert {s["expiresAt"] for s in sessions if s["userAgent"] == awkward} == {
        "9999-12-31T23:59:59.999999"
    }
    assert any(s["ipAddress"] == "192.0.2.1" for s in sessions), sessions
    # A user's own sessions, under `me`, and a selection with a resolver (rows, both apps).
    await _compare(world, "{ me { sessions { id userAgent expiresAt } profile { bio } } }", {})
    await _compare(world, "{ me { sessions { id current } profile { preferences } } }", {})
