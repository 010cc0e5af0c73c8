# ruff: noqa: E501  (GraphQL documents read best on one line each)
"""The planned executor answers exactly as the generic one: every query here runs through both
(two apps on one database, ``graphql.fast_execution`` on and off) and the HTTP bodies must be identical."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any

import orjson
import pytest
import strawberry
from strawberry.permission import BasePermission

from gql_api.db import Database
from gql_api.models import Role
from tests.conftest import MadeUser, insert_user, session_token
from tests.hardening_support import app_client

Q2_SELECTION = """totalCount edges { cursor node { id email firstName lastName role status createdAt
  profile { bio timezone locale preferences updatedAt } sessions { id userAgent ipAddress expiresAt current } } }
  pageInfo { hasNextPage hasPreviousPage startCursor endCursor }"""

QUERIES: list[tuple[str, dict[str, Any] | None]] = [
    ("{ me { id email firstName lastName role } }", None),
    (
        "query Me { me { __typename id emailVerified loginCount lastLoginAt sessions { id current deviceInfo } } }",
        None,
    ),
    (f"{{ users(first: 20) {{ {Q2_SELECTION} }} }}", None),
    (
        f"query Page($n: Int, $after: String) {{ users(first: $n, after: $after) {{ {Q2_SELECTION} }} }}",
        {"n": 3},
    ),
    (
        f"query Page($n: Int, $after: String) {{ users(first: $n, after: $after) {{ {Q2_SELECTION} }} }}",
        {"n": 2, "after": "AFTER"},
    ),
    (
        "query Back($n: Int) { users(last: $n) { edges { node { email } } pageInfo { hasPreviousPage } } }",
        {"n": 2},
    ),
    ("{ a: me { id } b: me { email } users(first: 1) { edges { node { __typename id } } } }", None),
    ('{ user(id: "SELF") { email profile { bio } } }', None),
    ('{ user(id: "OTHER") { email profile { bio } sessions { id } } }', None),
    ('{ user(id: "not-a-uuid") { email } }', None),
    ('{ user(id: "00000000-0000-0000-0000-000000000000") { email } }', None),
    ("{ users(first: 101) { totalCount } }", None),
    ('{ users(first: 1, after: "garbage") { totalCount } }', None),
    ("query($n: Int) { users(first: $n) { totalCount } }", {"n": "x"}),
    ("{ me { id } health { status } }", None),
    ("{ users(first: 2) { edges { node { id ...F } } } } fragment F on User { email }", None),
    ('{ users(first: 2, filter: {search: "user"}) { totalCount } }', None),
    # Pages whose statements select only the columns shown (and the sort key for the cursor)
    (
        "{ users(first: 3, orderBy: {field: LAST_LOGIN_AT, direction: ASC}) { edges { cursor node { email } } } }",
        None,
    ),
    (
        "{ a: users(first: 2) { edges { node { email } } } b: users(first: 2, orderBy: {field: LAST_NAME}) { edges { cursor node { lastName mfa { enabled } } } } }",
        None,
    ),
    (
        "{ users(first: 2) { edges { node { id ... on User { loginCount emailVerifiedAt } } } } }",
        None,
    ),
]


async def _data(db: Database) -> dict[str, Any]:
    admin = await insert_user(db, email="admin@example.com", role="admin", first_name="Ada")
    others = [await insert_user(db, email=f"u{i}@example.com", last_name=f"L{i}") for i in range(5)]
    async with db.engine.begin() as conn:
        from sqlalchemy import text

        await conn.execute(
            text(
                "UPDATE user_profiles SET bio = 'hello', timezone = 'UTC', preferences = '{\"a\": [1]}'"
            )
        )
    tokens = {"admin": await session_token(db, _settings(db), admin)}
    tokens["user"] = await session_token(db, _settings(db), others[0])
    await session_token(db, _settings(db), others[0])  # a second session of that user
    return {"admin": admin, "user": others[0], "other": others[1], "tokens": tokens}


def _settings(db: Database) -> Any:
    from tests.conftest import make_settings

    return make_settings(db.url)


def _fill(
    query: str, variables: dict[str, Any] | None, data: dict[str, Any], cursor: str
) -> tuple[str, Any]:
    me: MadeUser = data["user"]
    other: MadeUser = data["other"]
    query = query.replace("SELF", str(me.id)).replace("OTHER", str(other.id))
    if variables and variables.get("after") == "AFTER":
        variables = {**variables, "after": cursor}
    return query, variables


@pytest.mark.parametrize("who", ["admin", "user", "anonymous", "bad token"])
async def test_both_executors_answer_identically(db: Database, who: str) -> None:
    data = await _data(db)
    token = {
        "admin": data["tokens"]["admin"],
        "user": data["tokens"]["user"],
        "anonymous": None,
        "bad token": "x.y.z",
    }[who]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        app_client(db, graphql={"fast_execution": True}) as fast,
        app_client(db, graphql={"fast_execution": False}) as generic,
    ):
        page = (
            await generic.post(
                "/graphql",
                json={"query": "{ users(first: 2) { pageInfo { endCursor } } }"},
                headers={"Authorization": f"Bearer {data['tokens']['admin']}"},
            )
        ).json()
        cursor = page["data"]["users"]["pageInfo"]["endCursor"]
        for raw_query, raw_variables in QUERIES:
            query, variables = _fill(raw_query, raw_variables, data, cursor)
            body = {"query": query, "variables": variables or {}}
            a = await fast.post("/graphql", json=body, headers=headers)
            b = await generic.post("/graphql", json=body, headers=headers)
            assert (a.status_code, a.json()) == (b.status_code, b.json()), query


async def test_the_planned_executor_answers_the_hot_queries(db: Database) -> None:
    """Fragments now run planned too: every query shape counts as planned at /metrics."""
    data = await _data(db)
    headers = {"Authorization": f"Bearer {data['tokens']['admin']}"}
    async with app_client(db) as http:
        before = await planned_count(http)
        for query in (
            "query Q1 { me { id email firstName lastName role } }",
            f"query Q2 {{ users(first: 20) {{ {Q2_SELECTION} }} }}",
            "query F { me { ...M } } fragment M on User { id }",
        ):
            response = await http.post("/graphql", json={"query": query}, headers=headers)
            assert "errors" not in response.json()
        assert await planned_count(http) - before == 3
        mutation = "mutation { logoutAll(keepCurrent: true) }"
        await http.post("/graphql", json={"query": mutation}, headers=headers)
        assert await planned_count(http) - before == 3  # mutations stay generic


async def planned_count(http: Any) -> float:
    """``gql_api_graphql_executions_total{executor="planned"}`` as /metrics reports it."""
    text = (await http.get("/metrics")).text
    match = re.search(r'^gql_api_graphql_executions_total\{executor="planned"\} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


async def test_a_page_of_users_costs_the_same_statements_when_planned(db: Database) -> None:
    from tests.users_support import count_statements

    data = await _data(db)
    headers = {"Authorization": f"Bearer {data['tokens']['admin']}"}
    counts = []
    async with app_client(db) as http:
        for n in (1, 6):
            with count_statements(db) as statements:
                body = (
                    await http.post(
                        "/graphql",
                        json={"query": f"{{ users(first: {n}) {{ {Q2_SELECTION} }} }}"},
                        headers=headers,
                    )
                ).json()
            assert "errors" not in body and len(body["data"]["users"]["edges"]) == n
            counts.append(len(statements))
    assert counts[0] == counts[1] == 4, counts  # viewer, page with its total, 2 relations


async def test_variables_kept_with_a_plan_answer_only_their_own_requests(db: Database) -> None:
    """A plan keeps the coerced values of a few sets of variables (planned.py), input objects
    too: each request still gets its own variables' answer, in any order, the same set again
    the same answer, and values that do not coerce are refused every time."""
    data = await _data(db)
    headers = {"Authorization": f"Bearer {data['tokens']['admin']}"}
    document = (
        "query($n: Int, $s: Boolean!, $f: UserFilter) { users(first: $n, filter: $f) "
        "{ edges { node { id sessions @include(if: $s) { id } } } } }"
    )
    sends: list[dict[str, Any]] = [
        {"n": 1, "s": True}, {"n": 2, "s": False}, {"n": 1, "s": True},
        {"n": 3, "s": False, "f": {"role": "ADMIN"}}, {"n": 2, "s": False}, {"n": "x", "s": True},
        {"n": 3, "s": False, "f": {"role": "USER"}}, {"n": 2, "s": True},
        {"n": 3, "s": False, "f": {"role": "ADMIN"}}, {"n": 3, "s": False, "f": {"role": "USER"}},
        {"n": 3, "s": True, "f": {"role": "USER", "status": "ACTIVE"}},
        {"n": 3, "s": True, "f": {"role": "USER", "status": "ACTIVE"}},
    ]  # fmt: skip
    answers: dict[str, Any] = {}
    async with app_client(db) as http:
        for variables in sends:
            body = (
                await http.post(
                    "/graphql", json={"query": document, "variables": variables}, headers=headers
                )
            ).json()
            if variables["n"] == "x":
                assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
                continue
            edges = body["data"]["users"]["edges"]
            expected = 1 if variables.get("f", {}).get("role") == "ADMIN" else variables["n"]
            assert len(edges) == expected, (variables, body)
            assert all(("sessions" in e["node"]) is variables["s"] for e in edges), body
            first = answers.setdefault(json.dumps(variables, sort_keys=True), body)
            assert body == first, variables  # a kept set answers as when it was coerced


async def test_a_relation_reads_only_the_columns_its_selection_shows(db: Database) -> None:
    """A page's sessions and profiles select the columns their selections read (and the key),
    not every column: written as JSON by PostgreSQL when every field has an exact rendering
    (gql_api.repositories.json_text), else as rows. Under either executor the answer is the
    same (the tests above, and the differential test)."""
    from tests.users_support import count_statements

    data = await _data(db)
    headers = {"Authorization": f"Bearer {data['tokens']['admin']}"}
    read: dict[str, tuple[bool, set[str]]] = {}
    async with app_client(db) as http:
        for name, selection in (
            ("json", "profile { bio locale } sessions { id userAgent }"),
            ("columns", "profile { __typename bio } sessions { id deviceInfo }"),
            ("a resolver", "profile { bio preferences } sessions { id current }"),
        ):
            document = f"{{ users(first: 3) {{ edges {{ node {{ id {selection} }} }} }} }}"
            with count_statements(db) as statements:
                body = (
                    await http.post("/graphql", json={"query": document}, headers=headers)
                ).json()
            assert "errors" not in body and body["data"]["users"]["edges"], body
            for table in ("user_profiles", "user_sessions"):
                (statement,) = [s for s in statements if f"FROM {table}" in s]
                columns = re.match(r"SELECT (.*?)\s+FROM", statement, re.S)
                assert columns is not None, statement
                written = "concat(" in columns.group(1)
                read[f"{name} {table}"] = (written, set(re.findall(rf"{table}\.(\w+)", statement)))
    # Written by PostgreSQL: the key, the shown columns, and the sessions' order.
    assert read["json user_profiles"] == (True, {"user_id", "bio", "locale"})
    assert read["json user_sessions"] == (
        True,
        {"user_id", "id", "user_agent", "created_at", "revoked_at", "expires_at"},
    )
    # A JSON column has no exact rendering: rows of the columns shown (and the key).
    assert read["columns user_profiles"] == (True, {"user_id", "bio"})
    assert read["columns user_sessions"][0] is False
    assert read["columns user_sessions"][1] >= {"id", "user_id", "device_info"}
    assert "user_agent" not in read["columns user_sessions"][1]
    # A field with a resolver gets the whole row: every column but the secrets.
    written, profile_columns = read["a resolver user_profiles"]
    assert not written and {"preferences", "created_at", "updated_at"} <= profile_columns
    written, session_columns = read["a resolver user_sessions"]
    assert not written and {"device_info", "created_at", "expires_at"} <= session_columns
    assert not {"token_hash", "previous_token_hash"} & session_columns


@pytest.mark.parametrize("fast", [True, False])
async def test_a_page_of_users_reads_only_the_columns_its_selection_shows(
    db: Database, fast: bool
) -> None:
    """The planned executor tells the ``users`` resolver which columns the document reads of
    its rows (gql_api.graphql.engine.lookahead): the page's statement selects those, the id
    (relations load by it) and the sort key (cursors hold it). A field of the rows that calls a
    resolver, or the generic executor, reads whole rows."""
    from tests.users_support import count_statements

    data = await _data(db)
    headers = {"Authorization": f"Bearer {data['tokens']['admin']}"}
    all_public = {
        "id", "email", "first_name", "last_name", "role", "status", "email_verified",
        "email_verified_at", "password_changed_at", "last_login_at", "login_count",
        "created_at", "updated_at",
    }  # fmt: skip
    read: dict[str, set[str]] = {}
    async with app_client(db, graphql={"fast_execution": fast}) as http:
        for name, arguments, selection in (
            ("plain", "", "edges { node { __typename email role profile { bio } } }"),
            ("by name", ", orderBy: {field: LAST_NAME}", "edges { cursor node { email } }"),
            ("a resolver", "", "edges { node { email mfa { enabled } } }"),
            ("aliases", "", "edges { node { email } } again: totalCount"),
            ("a count", "", "totalCount pageInfo { hasNextPage }"),
        ):
            document = f"{{ users(first: 3{arguments}) {{ {selection} }} }}"
            if name == "aliases":
                document = (
                    "{ a: users(first: 3) { edges { node { email } } } "
                    "b: users(first: 3) { edges { node { createdAt } } } }"
                )
            with count_statements(db) as statements:
                body = (
                    await http.post("/graphql", json={"query": document}, headers=headers)
                ).json()
            assert "errors" not in body, body
            pages = [s for s in statements if re.search(r"\bFROM users\b(?! JOIN)", s)]
            assert pages, statements
            read[name] = {c for s in pages for c in re.findall(r"users\.(\w+)", s.split("FROM")[0])}
    if not fast:
        assert all(columns == all_public for columns in read.values()), read
        return
    assert read["plain"] == {"id", "email", "role", "created_at"}  # created_at: the sort key
    assert read["by name"] == {"id", "email", "last_name"}
    assert read["a resolver"] == all_public
    assert read["aliases"] == {"id", "email", "created_at"}
    assert read["a count"] == {"id", "created_at"}


def test_what_a_root_field_reads_of_its_rows_is_known_only_when_every_field_is_a_column() -> None:
    """``lookahead.returned_columns`` on compiled plans: columns, relation keys and constants
    give a set; a field that calls a resolver, rows of two types, rows behind an interface or a
    union, or behind an object that is not a row holder give None (whole rows)."""
    from gql_api.graphql.engine.field_plans import FieldPlan
    from gql_api.graphql.engine.lookahead import returned_columns
    from gql_api.graphql.engine.rows import Column, Relation

    def column(name: str) -> FieldPlan:
        return FieldPlan(key=name, python_name=name, graphql_type=None, column=Column(name))

    async def load(*_: Any) -> list[Any]:
        return []

    relation = FieldPlan(key="r", python_name="r", graphql_type=None, relation=Relation(load))
    typename = FieldPlan(key="__typename", python_name="", graphql_type=None, typename="A")
    resolver = FieldPlan(key="f", python_name="f", graphql_type=None, resolver=len)

    def rows(row_type: type, *children: FieldPlan, **extra: Any) -> FieldPlan:
        return FieldPlan(
            key="node", python_name="node", graphql_type=None, row_type=row_type,
            children=list(children), **extra,
        )  # fmt: skip

    def field(*children: FieldPlan) -> FieldPlan:
        return FieldPlan(key="f", python_name="f", graphql_type=None, children=list(children))

    assert returned_columns(field(rows(int, column("a"), typename, relation))) == {"a", "id"}
    assert returned_columns(field(field(rows(int, column("a"))), rows(int, column("b")))) == {
        "a",
        "b",
    }
    assert returned_columns(field(rows(int, column("a"), resolver))) is None
    assert returned_columns(field(rows(int, column("a")), rows(str, column("a")))) is None
    assert returned_columns(field(rows(int, by_type={"A": [column("a")]}))) is None
    assert returned_columns(field(column("a"))) == frozenset()  # rows held, none selected
    assert returned_columns(column("a")) is None  # a scalar field
    opaque = FieldPlan(key="o", python_name="o", graphql_type=None, opaque=True)
    opaque.children = [rows(int, column("a"))]
    assert returned_columns(field(opaque)) is None  # an object that may read its rows
    # Plans are shared where a fragment is spread more than once: each is walked once, not
    # once per path (2^60 paths here).
    shared = field(rows(int, column("a")), field(rows(int, column("b"))))
    for _ in range(60):
        shared = field(shared, shared)
    assert returned_columns(shared) == {"a", "b"}


def test_only_resolvers_that_read_nothing_but_the_context_are_planned() -> None:
    """The compiler's test for a resolver's ``info`` (gql_api.graphql.engine.plans): the planned
    executor hands resolvers the context alone, so anything else refuses the document when it
    is compiled, never while it runs."""
    from gql_api.graphql.engine.readers import reads_only_context

    def context_only(info: Any) -> Any:
        return info.context.viewer

    def field_name(info: Any) -> Any:
        return (info.context, info.field_name)

    def passed_on(info: Any) -> Any:
        return context_only(info)

    def renamed(data: Any) -> Any:
        return data.path

    assert reads_only_context(context_only, "info")
    assert not reads_only_context(field_name, "info")
    assert not reads_only_context(passed_on, "info")
    assert not reads_only_context(renamed, "data")
    assert not reads_only_context(len, "info")  # no source to read: refused


@strawberry.input
class _Inner:
    n: int
    tags: list[str] | None = None
    role: Role = Role.USER


@strawberry.input
class _Outer:
    inners: list[_Inner]
    inner: _Inner | None = None
    nested: _Outer | None = None  # an input type inside itself
    grid: list[list[_Inner | None]] | None = None


@strawberry.type
class _InputsQuery:
    @strawberry.field
    def f(self, o: _Outer, many: list[_Outer] | None = None, n: int = 2) -> int:
        return n


def test_compiled_argument_conversion_gives_what_strawberry_gives() -> None:
    """Every argument of every field of the schema, with values of every shape its type allows
    (nulls, absent fields, lists, nested input objects, enum members), converts to exactly what
    Strawberry's ``convert_arguments`` makes of it (gql_api.graphql.engine.argument_conversion)."""
    from gql_api.graphql.schema.root import build_schema

    # The schema's own arguments, and input shapes it does not have yet.
    assert _compare_conversions(build_schema()) > 60
    assert _compare_conversions(strawberry.Schema(_InputsQuery)) >= 8


def _compare_conversions(schema: Any) -> int:
    from datetime import UTC, datetime

    from graphql import (
        GraphQLEnumType,
        GraphQLInputObjectType,
        GraphQLList,
        GraphQLNonNull,
        GraphQLObjectType,
    )
    from strawberry.types.arguments import convert_arguments

    from gql_api.graphql.engine.argument_conversion import compiled_conversion
    from gql_api.graphql.engine.strawberry_seams import core_schema

    core = core_schema(schema)
    registry, config = schema.schema_converter.scalar_registry, schema.config
    leaves = {"Int": 3, "Float": 1.5, "String": "s", "Boolean": True, "ID": "i"}

    def samples(graphql_type: Any, depth: int = 0) -> list[Any]:
        if isinstance(graphql_type, GraphQLNonNull):
            return [v for v in samples(graphql_type.of_type, depth) if v is not None]
        if depth > 3:
            return [None]
        if isinstance(graphql_type, GraphQLList):
            items = samples(graphql_type.of_type, depth + 1)
            return [None, [], items[-1:] * 2, items]
        if isinstance(graphql_type, GraphQLEnumType):
            return [None, *(v.value for v in graphql_type.values.values())]
        if isinstance(graphql_type, GraphQLInputObjectType):
            every = {
                n: (samples(f.type, depth + 1) or [None])[-1]
                for n, f in graphql_type.fields.items()
            }
            first = dict(list(every.items())[:1])
            return [None, {}, first, every]
        return [None, leaves.get(graphql_type.name, datetime(2026, 1, 2, tzinfo=UTC))]

    compared = 0
    for parent in core.type_map.values():
        if not isinstance(parent, GraphQLObjectType) or parent.name.startswith("__"):
            continue
        for name, definition in parent.fields.items():
            field = schema.get_field_for_type(name, parent.name)
            if field is None or not field.arguments:
                continue
            compiled = compiled_conversion(field.arguments, registry, config)
            assert compiled is not None, f"{parent.name}.{name}: converted by Strawberry alone"
            for argument_name, argument in definition.args.items():
                for value in samples(argument.type):
                    values = {argument_name: value}
                    expected = convert_arguments(
                        values, field.arguments, scalar_registry=registry, config=config
                    )
                    assert repr(compiled(values, field.arguments)) == repr(expected), values
                    compared += 1
    return compared


def test_the_library_seams_still_hold() -> None:
    """Every library internal the planned executor relies on (gql_api.graphql.engine.strawberry_seams),
    used against the real schema: an upgrade that moves one fails here, by name."""
    from graphql import (
        GraphQLSchema,
        VariableValues,
        get_argument_values,
        parse,
    )

    from gql_api.graphql.engine.strawberry_seams import (
        InfoSite,
        StrawberryExecutionContext,
        argument_converter,
        core_schema,
        resolver_parts,
        strawberry_info,
    )
    from gql_api.graphql.schema.root import build_schema
    from gql_api.graphql.schema.users import OrderDirection, UserFilter, UserOrder

    schema: Any = build_schema()
    core = core_schema(schema)
    assert isinstance(core, GraphQLSchema) and core.query_type is not None
    assert "users" in core.query_type.fields
    assert callable(StrawberryExecutionContext.build)  # PolicyExecutionContext overrides it
    users = schema.get_field_for_type("users", "Query")
    parts = resolver_parts(users.base_resolver)
    assert parts.pass_source and parts.info_name == "info" and parts.parent_names == ()
    from gql_api.graphql.schema.types import Session

    current = resolver_parts(schema.get_field_for_type("current", "Session").base_resolver)
    assert not current.pass_source and current.parent_names == ("root",)
    assert Session is not None
    assert callable(parts.function)

    page = parse(
        '{ users(first: 2, filter: {search: "x"}, orderBy: {direction: ASC}) { totalCount } }'
    )
    page_node = page.definitions[0].selection_set.selections[0]  # type: ignore[attr-defined]
    coerced = get_argument_values(core.query_type.fields["users"], page_node)
    converted = argument_converter(schema)(users.arguments)(coerced, users.arguments)
    assert converted["first"] == 2
    assert isinstance(converted["filter"], UserFilter) and converted["filter"].search == "x"
    assert isinstance(converted["order_by"], UserOrder)
    from strawberry.types import ExecutionContext

    from gql_api.graphql.engine.strawberry_seams import pin_operation_name

    pinned = ExecutionContext(query="query A { me { id } }", schema=schema, allowed_operations=())
    pinned.graphql_document = parse(pinned.query or "")
    pin_operation_name(pinned)
    pinned.graphql_document = parse("query B { me { id } }")  # not read again: pinned
    assert pinned.operation_name == "A"
    assert converted["order_by"].direction is OrderDirection.ASC

    node = parse("{ users { totalCount } }").definitions[0]
    field_node = node.selection_set.selections[0]  # type: ignore[attr-defined]
    site = InfoSite(
        strawberry_schema=schema,
        strawberry_field=users,
        field_nodes=[field_node],
        return_type=core.query_type.fields["users"].type,
        parent_type=core.query_type,
        fragments={},
        operation=node,  # type: ignore[arg-type]
    )
    info = strawberry_info(site, ["users"], VariableValues({}, {}), context="CONTEXT")
    assert info.context == "CONTEXT"
    assert info.field_name == "users" and info.python_name == "users"
    assert info.path.as_list() == ["users"]
    assert [f.name for f in info.selected_fields[0].selections] == ["totalCount"]


class OnlyAda(BasePermission):
    message = "Only Ada"

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        return bool(info.context["name"] == "Ada")


@strawberry.type
class Item:
    name: str

    @strawberry.field(permission_classes=[OnlyAda])
    def secret(self, suffix: str = "!") -> str | None:
        return self.name + suffix


@strawberry.interface
class Pet:
    name: str


@strawberry.type
class Dog(Pet):
    barks: bool


@strawberry.type
class Cat(Pet):
    lives: int


@strawberry.type
class Fish:
    fins: int


Creature = Annotated[Dog | Cat | Fish, strawberry.union("Creature")]


@strawberry.input
class Tags:
    names: list[str]


@strawberry.type
class ToyQuery:
    @strawberry.field
    def tagged(self, tags: Tags, info: strawberry.Info) -> list[str]:
        # A resolver that changes its argument and the request's variables.
        seen = list(tags.names)
        tags.names.append("changed")
        for value in info.variable_values.values():
            value["names"].append("changed")
        return seen

    @strawberry.field
    def pets(self) -> list[Pet]:
        return [Dog(name="rex", barks=True), Cat(name="tom", lives=9)]

    @strawberry.field
    async def creatures(self) -> list[Creature]:
        return [Fish(fins=2), Dog(name="d", barks=False)]

    @strawberry.field
    def not_a_pet(self) -> Pet | None:
        # Not a Pet: graphql-core answers with its error, both executors alike.
        return Fish(fins=1)  # type: ignore[return-value]

    @strawberry.field
    def items(self) -> list[Item]:
        return [Item(name="a"), Item(name="b")]

    @strawberry.field(permission_classes=[OnlyAda])
    async def guarded(self, times: int = 1) -> str | None:
        return "x" * times


async def test_fields_with_permissions_run_planned_through_strawberry() -> None:
    """A field with Strawberry field extensions (a permission class here; the service's schema
    has none yet) is resolved inside the plan by Strawberry's own resolve function, so its
    extensions run as under graphql-core: same data, same errors, for a caller it admits and
    one it refuses."""
    from gql_api.graphql.engine.planned import Planner
    from gql_api.graphql.schema.root import Schema
    from tests.conftest import make_settings

    schema = Schema(query=ToyQuery)
    planner = Planner(schema, make_settings("postgresql://unused@127.0.0.1/unused"))
    query = 'query($t: Int) { guarded(times: $t) items { name secret(suffix: "?") } }'
    plan = planner.plan_for(query, None)
    assert plan is not None  # planned, not declined
    for name in ("Ada", "Bob"):
        context = {"name": name}
        planned = await planner.run(plan, context, {"t": 2})
        generic = await schema.execute(query, variable_values={"t": 2}, context_value=context)
        assert planned.data == generic.data
        assert [e.formatted for e in planned.errors or ()] == [
            e.formatted for e in generic.errors or ()
        ]
    refused = {"guarded": None, "items": [{"name": n, "secret": None} for n in ("a", "b")]}
    assert planned.data == refused  # Bob, the last caller


async def test_interfaces_and_unions_run_planned() -> None:
    """Interfaces and unions (the service's schema has none yet): the runtime type is decided
    by Strawberry's resolve_type and is_type_of, fragments apply per type, and a value of a
    type the interface does not allow gets graphql-core's error."""
    from gql_api.graphql.engine.planned import Planner
    from gql_api.graphql.schema.root import Schema
    from tests.conftest import make_settings

    schema = Schema(query=ToyQuery)
    planner = Planner(schema, make_settings("postgresql://unused@127.0.0.1/unused"))
    query = (
        "{ pets { __typename name ... on Dog { barks } ... on Cat { lives } }"
        " creatures { __typename ... on Fish { fins } ... on Pet { name } ...D }"
        " notAPet { name } } fragment D on Dog { barks name }"
    )
    plan = planner.plan_for(query, None)
    assert plan is not None  # planned, not declined
    planned = await planner.run(plan, {"name": "Ada"}, None)
    generic = await schema.execute(query, context_value={"name": "Ada"})
    assert planned.data == generic.data
    assert [e.formatted for e in planned.errors or ()] == [
        e.formatted for e in generic.errors or ()
    ]
    assert planned.data is not None
    assert planned.data["pets"] == [
        {"__typename": "Dog", "name": "rex", "barks": True},
        {"__typename": "Cat", "name": "tom", "lives": 9},
    ]
    assert planned.errors and planned.errors[0].path == ["notAPet"]


@strawberry.type
class Count:
    n: int


@strawberry.type
class UnservedQuery:
    """Values the schema's scalars refuse, and types nobody can tell, under non-null types."""

    @strawberry.field
    def fine(self) -> int | None:
        return 1

    @strawberry.field
    def word(self) -> int:
        return "x"  # type: ignore[return-value]

    @strawberry.field
    def maybe_word(self) -> int | None:
        return "x"  # type: ignore[return-value]

    @strawberry.field
    def counts(self) -> list[Count]:
        return [Count(n="y"), Count(n=2)]  # type: ignore[arg-type]

    @strawberry.field
    def maybe_counts(self) -> list[Count | None] | None:
        return [Count(n=1), Count(n="y")]  # type: ignore[arg-type]

    @strawberry.field
    def count(self) -> Count | None:
        return Count(n=[3])  # type: ignore[arg-type]

    @strawberry.field
    def pets(self) -> list[Pet]:
        return [Fish(fins=1), Dog(name="rex", barks=True)]  # type: ignore[list-item]

    @strawberry.field
    def maybe_pets(self) -> list[Pet | None]:
        return [Dog(name="rex", barks=True), Fish(fins=1)]  # type: ignore[list-item]


async def test_an_error_under_a_non_null_type_propagates_as_graphql_core_reports_it() -> None:
    """An error met while writing a value (a scalar that does not serialise it, an object of
    a type the interface does not allow) nulls the nearest nullable parent, as graphql-core's
    does: the declared non-null type decides, not the type under it."""
    from gql_api.graphql.engine.planned import Planner
    from gql_api.graphql.schema.root import Schema
    from tests.conftest import make_settings

    schema = Schema(query=UnservedQuery, types=[Dog, Cat, Fish])
    planner = Planner(schema, make_settings("postgresql://unused@127.0.0.1/unused"))
    documents = {
        "{ fine word }": None,
        "{ fine maybeWord }": {"fine": 1, "maybeWord": None},
        "{ fine counts { n } }": None,
        "{ fine maybeCounts { n } }": {"fine": 1, "maybeCounts": [{"n": 1}, None]},
        "{ fine count { n } }": {"fine": 1, "count": None},
        "{ fine pets { name } }": None,
        "{ fine maybePets { __typename name } }": {
            "fine": 1,
            "maybePets": [{"__typename": "Dog", "name": "rex"}, None],
        },
    }
    for query, data in documents.items():
        plan = planner.plan_for(query, None)
        assert plan is not None, query  # planned, not declined
        planned = await planner.run(plan, None, None)
        generic = await schema.execute(query)
        assert generic.data == data, query
        assert planned.data == data, query
        assert [e.formatted for e in planned.errors or ()] == [
            e.formatted for e in generic.errors or ()
        ], query
        assert len(planned.errors or ()) == 1, query


@strawberry.type
class Held:
    """Scalars an object holds (attributes) and gives (resolvers of the object alone), of the
    classes the planned executor writes at once and of others (``scalar_shortcuts``)."""

    count: int
    flag: bool
    ratio: float
    word: str
    code: strawberry.ID
    at: datetime
    maybe: str | None

    @strawberry.field
    def given(self) -> int:
        return self.count * 2**20  # past 32 bits from 2,048

    @strawberry.field
    async def later(self) -> str:
        return f"later {self.word}"

    @strawberry.field
    def lazily(self) -> str:
        return self.later()  # type: ignore[return-value,misc]  # a coroutine, from a plain function


def _held(count: Any, flag: Any, ratio: Any, word: Any, code: Any, at: Any, maybe: Any) -> Held:
    return Held(count=count, flag=flag, ratio=ratio, word=word, code=code, at=at, maybe=maybe)


@strawberry.type
class HeldQuery:
    @strawberry.field
    def held(self) -> list[Held | None]:
        moment = datetime(2026, 12, 4, 15, 0, 0, 123456, tzinfo=UTC)
        elsewhere = moment.astimezone(timezone(timedelta(hours=2)))
        some = uuid.UUID("01234567-89ab-cdef-0123-456789abcdef")
        return [
            _held(7, True, 0.5, "w", "id", moment, None),
            _held(2**31 - 1 >> 20, False, 7, 5, some, elsewhere, "m"),  # converted, no error
            _held(-(2**31) >> 20, 1, 7.0, some, 7, moment.replace(microsecond=0), 9),
            _held(2**31, True, 0.5, "w", "id", moment, None),  # then one error in each
            _held(7, "yes", 0.5, "w", "id", moment, None),
            _held(7, True, "x", "w", "id", moment, None),
            _held(7, True, 0.5, "w", 7.5, moment, None),
            _held(7, True, 0.5, "w", "id", "not a moment", None),
            _held(2048, True, 0.5, "w", "id", moment, None),
            _held(None, None, None, None, None, None, None),
        ]

    @strawberry.field
    def word(self) -> str:
        return "root"


async def test_scalars_an_object_gives_are_written_as_graphql_core_writes_them() -> None:
    """Attributes and resolvers of the parent alone are written at once for the common classes
    (a str, a UUID for an ID, a UTC datetime, a bool, a 32-bit int); every other value, a null,
    an awaitable, goes through the scalar's ``serialize`` and graphql-core's errors, in order."""
    from gql_api.graphql.engine.planned import Planner
    from gql_api.graphql.schema.root import Schema
    from tests.conftest import make_settings

    schema = Schema(query=HeldQuery)
    planner = Planner(schema, make_settings("postgresql://unused@127.0.0.1/unused"))
    query = "{ word held { count flag ratio word code at maybe given later lazily } }"
    plan = planner.plan_for(query, None)
    assert plan is not None
    planned = await planner.run(plan, None, None)
    generic = await schema.execute(query)
    # As the response writes them (a UTC datetime is left to orjson, which writes isoformat())
    assert orjson.dumps(planned.data) == orjson.dumps(generic.data)
    assert [e.formatted for e in planned.errors or ()] == [
        e.formatted for e in generic.errors or ()
    ]
    assert generic.data is not None and generic.data["held"][0] == {
        "count": 7, "flag": True, "ratio": 0.5, "word": "w", "code": "id",
        "at": "2026-12-04T15:00:00.123456+00:00", "maybe": None, "given": 7 * 2**20,
        "later": "later w", "lazily": "later w",
    }  # fmt: skip
    assert generic.data["held"][1] is not None  # every value of it serialises
    held = generic.data["held"]
    assert None not in held[:3] and held[3:] == [None] * 7
    assert [e.path[1] for e in generic.errors or ()] == list(range(3, 10))  # one each


async def test_asynchronous_type_checks_run_generic_and_a_late_awaitable_is_an_error() -> None:
    """graphql-core awaits an ``async`` resolve_type or is_type_of; a document selecting such
    a type is decided generic when it compiles, so both executors answer alike. A sync
    resolve_type that returns an awaitable is met only at run time: the planned executor
    answers with an error at the value's path and closes the awaitable (never a hang, never a
    "coroutine was never awaited" warning)."""
    import gc
    import warnings

    from gql_api.graphql.engine.planned import Planner
    from gql_api.graphql.engine.strawberry_seams import core_schema
    from gql_api.graphql.schema.root import Schema
    from tests.conftest import make_settings

    query = "{ pets { __typename name } }"
    expected = {
        "pets": [{"__typename": "Dog", "name": "rex"}, {"__typename": "Cat", "name": "tom"}]
    }

    async def resolve_later(value: Any, *_: Any) -> str:
        return type(value).__name__

    async def is_dog_later(value: Any, *_: Any) -> bool:
        return isinstance(value, Dog)

    def resolve_lazily(value: Any, *args: Any) -> Any:
        return resolve_later(value, *args)  # a coroutine, from a plain function

    for patch in (
        ("Pet", "resolve_type", resolve_later),
        ("Dog", "is_type_of", is_dog_later),
        ("Pet", "resolve_type", resolve_lazily),
    ):
        schema = Schema(query=ToyQuery)  # its own GraphQL types: the patch stays in it
        type_name, attribute, function = patch
        setattr(core_schema(schema).type_map[type_name], attribute, function)
        planner = Planner(schema, make_settings("postgresql://unused@127.0.0.1/unused"))
        generic = await schema.execute(query)
        assert generic.errors is None and generic.data == expected, patch
        plan = planner.plan_for(query, None)
        if function is not resolve_lazily:
            assert plan is None, patch  # declined when compiled: the generic executor answers
            continue
        assert plan is not None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            planned = await planner.run(plan, None, None)
            gc.collect()
        assert planned.data is None  # [Pet!]! : the error reaches the root
        assert [(e.message, e.path) for e in planned.errors or ()] == [
            (
                "Abstract type 'Pet' resolved asynchronously: not supported by the planned"
                " executor.",
                ["pets", 0],
            )
        ]
        assert not [w for w in caught if "never awaited" in str(w.message)]


def test_row_builders_read_columns_exactly_as_the_field_readers_do() -> None:
    """A selection's row builder (one function for its column fields) gives what the readers
    give field by field, and refuses (so the walk reports the error) where a reader raises."""
    import uuid
    from datetime import UTC, datetime, timedelta, timezone
    from types import SimpleNamespace

    import orjson
    from graphql import GraphQLNonNull

    from gql_api.graphql.engine.field_plans import FieldPlan
    from gql_api.graphql.engine.readers import column_reader
    from gql_api.graphql.engine.row_builders import row_builder
    from gql_api.graphql.engine.rows import ROW_TYPES
    from gql_api.graphql.engine.strawberry_seams import core_schema
    from gql_api.graphql.schema.root import build_schema
    from gql_api.graphql.schema.types import Profile, User

    USER_ROWS, PROFILE_ROWS = ROW_TYPES[User], ROW_TYPES[Profile]

    from gql_api.models import Role as UserRole
    from gql_api.models import UserStatus as UserState

    schema = core_schema(build_schema())
    user_type, profile_type = schema.type_map["User"], schema.type_map["Profile"]
    when = datetime(2026, 12, 2, 10, 42, 52, 120000, tzinfo=UTC)
    cases = [
        (user_type, USER_ROWS, {"role": "admin", "status": "suspended", "login_count": 3}),
        (user_type, USER_ROWS, {"email_verified_at": None, "last_login_at": when}),
        (user_type, USER_ROWS, {"email": None}),  # a null in a non-null field
        (user_type, USER_ROWS, {"role": "emperor"}),  # a value the enum lacks
        (user_type, USER_ROWS, {"role": UserRole.ADMIN, "status": UserState.INACTIVE}),
        (profile_type, PROFILE_ROWS, {"bio": None, "timezone": None}),
        (profile_type, PROFILE_ROWS, {"updated_at": when}),
        # The scalars' shortcuts and what they leave to serialize (scalar_shortcuts)
        (user_type, USER_ROWS, {"id": uuid.UUID(int=7), "email": "ü@example.com"}),
        (user_type, USER_ROWS, {"created_at": when.replace(microsecond=0)}),
        (user_type, USER_ROWS, {"created_at": when.astimezone(timezone(timedelta(hours=5)))}),
        (user_type, USER_ROWS, {"created_at": datetime(2026, 1, 2, 3, 4, 5)}),  # naive
        (user_type, USER_ROWS, {"id": 12, "first_name": 3.5}),  # not str: serialize decides
        (user_type, USER_ROWS, {"first_name": ["a list"]}),  # refused by serialize
    ]
    base = {
        "id": "5d1e0b52-8a6e-4c3e-9d0f-0c8a7a4f3e21", "email": "a@example.com",
        "first_name": "A", "last_name": "B", "role": "user", "status": "active",
        "email_verified": True, "email_verified_at": when, "password_changed_at": None,
        "last_login_at": None, "login_count": 0, "created_at": when, "updated_at": None,
        "bio": "bio", "avatar_url": None, "phone": None, "timezone": "UTC", "locale": "en",
        "preferences": {}, "user_id": None,
    }  # fmt: skip
    names = {"email_verified_at": "emailVerifiedAt"}
    for graphql_type, rows, changes in cases:
        row = SimpleNamespace(**{**base, **changes})  # rows read as attributes
        plans = []
        for python_name, column in rows.columns.items():
            field_name = names.get(
                python_name, strawberry.utils.str_converters.to_camel_case(python_name)
            )
            field_type = graphql_type.fields[field_name].type
            owner = f"{graphql_type.name}.{field_name}"
            plans.append(
                FieldPlan(
                    key=f"k_{field_name}",
                    python_name=python_name,
                    graphql_type=field_type,
                    column=column,
                    read=column_reader(column, field_type, owner),
                )
            )
        plans.append(FieldPlan(key="__typename", python_name="", graphql_type=None, typename="T"))
        build, rest = row_builder(plans)
        assert build is not None and rest == []
        try:
            expected: dict[str, Any] | None = {
                p.key: p.read(row) if p.read else p.typename for p in plans
            }
        except Exception:
            expected = None
        if expected is None:  # a reader refused a column: the builder must refuse the row
            try:
                build(row)
            except Exception:
                refused = True
            else:
                refused = False
            assert refused, changes
        else:
            # The same JSON (a UTC datetime is left to orjson, which writes what the scalar
            # writes: gql_api.graphql.engine.scalar_shortcuts), keys in the same order.
            built = build(row)
            assert orjson.dumps(built) == orjson.dumps(expected), changes
            assert list(built) == list(expected)
        if graphql_type is user_type:  # non-null columns are read too
            assert any(isinstance(p.graphql_type, GraphQLNonNull) for p in plans)


async def test_kept_variables_are_not_changed_by_a_resolver_that_changes_its_argument() -> None:
    """Coerced variables kept with a plan (input objects and lists too) are copied for each
    request: a resolver that appends to its argument's list, or to the request's variables,
    changes its own request's copy, not what the next request with the same variables gets."""
    from gql_api.graphql.engine.planned import Planner
    from gql_api.graphql.schema.root import Schema
    from tests.conftest import make_settings

    schema = Schema(query=ToyQuery)
    planner = Planner(schema, make_settings("postgresql://unused@127.0.0.1/unused"))
    query = "query($t: Tags!) { tagged(tags: $t) }"
    plan = planner.plan_for(query, None)
    assert plan is not None
    variables = {"t": {"names": ["a", "b"]}}
    for _ in range(3):
        planned = await planner.run(plan, {}, variables)
        assert planned.errors is None and planned.data == {"tagged": ["a", "b"]}
    assert variables == {"t": {"names": ["a", "b"]}}  # the request's own JSON, untouched


def test_a_pending_value_is_what_inspect_calls_awaitable() -> None:
    """The executor decides per class which values can never be awaited; every value still gets
    ``inspect.isawaitable``'s answer, proxies and generator-based coroutines included."""
    import asyncio
    import inspect
    import types

    from gql_api.graphql.engine.settling import is_pending

    async def native() -> None:
        return None

    @types.coroutine
    def based() -> Any:
        yield

    def plain_generator() -> Any:
        yield

    class Awaits:
        def __await__(self) -> Any:
            yield

    coroutine = native()

    class Proxy:  # claims its target's class, as lazy proxies do
        @property
        def __class__(self) -> type:  # type: ignore[misc,override]
            return type(coroutine)

    loop = asyncio.new_event_loop()
    try:
        values = [
            coroutine, based(), plain_generator(), Awaits(), loop.create_future(), Proxy(),
            "text", 1, None, {}, [], object(),
        ]  # fmt: skip
        for _ in range(2):  # the second time from what was decided per class
            assert [is_pending(v) for v in values] == [inspect.isawaitable(v) for v in values]
        assert [is_pending(v) for v in values[:6]] == [True, True, False, True, True, True]
    finally:
        coroutine.close()
        loop.close()


def test_argument_values_are_kept_per_set_of_short_scalar_variables() -> None:
    """A field's coerced arguments are worked out once per set of the variables they read, and
    only for short scalars and small input objects: each set still gets its own values (an
    input object a copy of its own), and a long text or a large input object is coerced per
    call (kept, it would be memory a client chooses)."""
    from graphql import VariableValues, build_schema, parse

    from gql_api.graphql.engine.arguments import (
        KEPT_SETS,
        MAX_KEPT_PARTS,
        MAX_KEPT_TEXT,
        ArgumentPlan,
    )
    from gql_api.graphql.engine.readers import as_coerced

    schema = build_schema(
        "input F { a: Int l: [Int] } type Query { f(n: Int, s: String, o: F, k: Int = 3): Int }"
    )
    query = parse("query($n: Int, $s: String, $o: F) { f(n: $n, s: $s, o: $o) }")
    node = query.definitions[0].selection_set.selections[0]  # type: ignore[attr-defined]
    plan = ArgumentPlan(schema.query_type.fields["f"], node, [], as_coerced)  # type: ignore[union-attr]

    def values(**given: Any) -> dict[str, Any]:
        return plan.values(VariableValues({}, given))

    assert values(n=1) == {"n": 1, "k": 3} and values(n=2) == {"n": 2, "k": 3}
    assert values(n=1, s="x") == {"n": 1, "s": "x", "k": 3} and values(n=1) == {"n": 1, "k": 3}
    assert len(plan.kept) == 3
    long_text = "x" * (MAX_KEPT_TEXT + 1)
    assert values(s=long_text) == {"s": long_text, "k": 3}
    assert values(o={"l": list(range(MAX_KEPT_PARTS))}) == {
        "o": {"l": list(range(MAX_KEPT_PARTS))},
        "k": 3,
    }
    assert len(plan.kept) == 3  # neither was kept
    changed = values(o={"a": 1, "l": [2]})
    assert changed == {"o": {"a": 1, "l": [2]}, "k": 3} and len(plan.kept) == 4
    for _ in range(2):  # coerced, then kept: a resolver changes its own copy only
        changed["o"]["l"].append(5)
        changed = values(o={"a": 1, "l": [2]})
        assert changed == {"o": {"a": 1, "l": [2]}, "k": 3}
    plan.kept.popitem()

    class Unhashable(str):  # an immutable class whose values do not hash: coerced per call
        __hash__ = None  # type: ignore[assignment]

        def __eq__(self, other: object) -> bool:
            return str.__eq__(self, other)

    assert values(s=Unhashable("u")) == {"s": "u", "k": 3}
    assert len(plan.kept) == 3
    for n in range(10):
        assert values(n=n + 100) == {"n": n + 100, "k": 3}
    assert len(plan.kept) == KEPT_SETS


def test_conditions_are_decided_as_graphql_core_decides_them() -> None:
    """A ``@skip``/``@include`` reading a variable is decided from the coerced booleans at
    once; a null or a variable not given goes to graphql-core, with its error."""
    from graphql import GraphQLError, OperationDefinitionNode, VariableValues, parse

    from gql_api.graphql.engine.selections import conditional_selections, included

    document = parse(
        "query($a: Boolean, $b: Boolean) { x @include(if: $a) y @skip(if: $a) "
        "z @include(if: $a) @skip(if: $b) w @skip(if: true) @include(if: $b) "
        "v @include(if: false) @skip(if: $a) u @skip(if: false) @include(if: $b) }"
    )
    operation = document.definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    conditions = conditional_selections(document, operation)
    assert [c.node.name.value for c in conditions] == ["x", "y", "z", "w", "v", "u"]  # type: ignore[attr-defined]
    decided = set()
    for a in (True, False, None, "missing"):
        for b in (True, False, None, "missing"):
            coerced = {name: value for name, value in (("a", a), ("b", b)) if value != "missing"}
            variables = VariableValues({}, coerced)
            for condition in conditions:
                try:
                    expected: Any = included(condition.node, variables)
                except GraphQLError as error:
                    expected = error.message
                got = condition.decide(variables)
                assert (got.message if isinstance(got, GraphQLError) else got) == expected
                decided.add(str(expected)[:20])
    assert {"True", "False"} < decided and len(decided) > 2  # and graphql-core's refusals
