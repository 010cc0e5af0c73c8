"""PostgreSQL writes a row's JSON exactly as the row path does (gql_api.repositories.json_text).

The row path: the product's direct read returns the values, the schema's scalars serialise
them and orjson writes them. The JSON path: the same columns written by PostgreSQL. Each value
below is compared byte for byte on a real PostgreSQL, in a table of this test's own.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from sqlalchemy import Column, Integer, MetaData, Table, Text, insert, select, text
from sqlalchemy.dialects.postgresql import INET
from sqlalchemy.types import DateTime, String, Uuid

from gql_api.config import Settings
from gql_api.db import Database
from gql_api.graphql.engine.pipeline import build_pipeline_schema
from gql_api.graphql.engine.strawberry_seams import core_schema
from gql_api.models import UserSession
from gql_api.repositories.json_text import JsonField, Rendering, json_list, json_object

TABLE = Table(
    "t15_json_values",
    MetaData(),
    Column("k", Integer, primary_key=True),
    Column("txt", Text),
    Column("short", String(20)),
    Column("ip", INET),
    Column("u", Uuid),
    Column("ts", DateTime(timezone=True)),
)
FIELDS = (
    JsonField("__typename", constant="Sample"),
    JsonField("txt", "txt", Rendering.TEXT),
    JsonField("short", "short", Rendering.TEXT),
    JsonField("ip", "ip", Rendering.TEXT),
    JsonField("u", "u", Rendering.UUID),
    JsonField("ts", "ts", Rendering.TIMESTAMP),
)
# Every control character, quotes, backslashes, slashes, non-ASCII and the line separators.
AWKWARD = "".join(chr(c) for c in range(1, 128)) + "é😀\u2028\u2029\ufeff\U0010ffff"
ROWS: list[dict[str, Any]] = [
    {"txt": AWKWARD, "short": 'a"b\\c', "ip": "192.0.2.10", "u": uuid.uuid4(), "ts": "now"},
    {"txt": "", "short": "", "ip": "2001:db8::1/64", "u": uuid.UUID(int=0), "ts": None},
    {"txt": None, "short": None, "ip": "10.0.0.0/8", "u": None, "ts": "2026-12-02 16:20:41+00"},
    {"ip": None, "ts": "2026-12-02 16:20:41.120000+00"},  # a fraction ending in zeros
    {"ts": "2026-12-02 16:20:41.000001+05:30"},  # another offset: UTC in both
    {"ts": "0001-01-01 00:00:00+00"},
    {"ts": "1899-12-31 23:59:59.5+00"},
    {"ts": "9999-12-31 23:59:59.999999+00"},
    {"ts": "infinity"},  # asyncpg reads a naive datetime.max
    {"ts": "-infinity"},
]


@pytest.fixture
async def table(db: Database) -> AsyncIterator[Table]:
    async with db.engine.begin() as conn:
        await conn.run_sync(TABLE.metadata.create_all)
        for k, row in enumerate(ROWS):
            values = dict(row)
            if values.get("ts") == "now":
                values["ts"] = text("now()")
            elif isinstance(values.get("ts"), str):
                values["ts"] = text(f"'{values['ts']}'::timestamptz")
            await conn.execute(insert(TABLE).values(k=k, **values))
    try:
        yield TABLE
    finally:
        async with db.engine.begin() as conn:
            await conn.run_sync(TABLE.metadata.drop_all)


def _scalars(settings: Settings) -> dict[Rendering, Any]:
    types = core_schema(build_pipeline_schema(settings)).type_map
    return {
        Rendering.TEXT: types["String"].serialize,  # type: ignore[union-attr]
        Rendering.UUID: types["ID"].serialize,  # type: ignore[union-attr]
        Rendering.TIMESTAMP: types["DateTime"].serialize,  # type: ignore[union-attr]
    }


async def test_each_value_is_written_as_the_row_path_writes_it(
    db: Database, settings: Settings, table: Table
) -> None:
    serialize = _scalars(settings)
    rows = await db.fetch(select(table).order_by(table.c.k))
    written = await db.fetch(
        select(table.c.k, json_object(table, FIELDS).label("json")).order_by(table.c.k)
    )
    assert len(rows) == len(written) == len(ROWS)
    for row, json in zip(rows, written, strict=True):
        expected: dict[str, Any] = {"__typename": "Sample"}
        for field in FIELDS[1:]:
            assert field.column is not None and field.rendering is not None
            value = row[field.column]
            expected[field.key] = None if value is None else serialize[field.rendering](value)
        assert json.json.encode() == orjson.dumps(expected), (row, json.json)
    # The samples reach what they are for: awkward text, both infinities, a trimmed fraction.
    assert orjson.loads(written[0].json)["txt"] == AWKWARD
    assert orjson.loads(written[8].json)["ts"] == "9999-12-31T23:59:59.999999"
    assert orjson.loads(written[3].json)["ts"] == "2026-12-02T16:20:41.120000+00:00"


async def test_a_year_python_cannot_hold_fails_on_both_paths(db: Database, table: Table) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(insert(table).values(k=100, ts=text("'10000-01-01 00:00:00+00'")))
    one = select(table.c.ts).where(table.c.k == 100)
    with pytest.raises(OverflowError):
        await db.fetch(one)
    with pytest.raises(Exception, match="year out of range"):
        await db.fetch(select(json_object(table, FIELDS[5:])).where(table.c.k == 100))


async def test_a_list_is_its_objects_in_its_order(db: Database, table: Table) -> None:
    newest_first = (table.c.k.desc(),)
    objects = await db.fetch(
        select(json_object(table, FIELDS[:3]).label("json")).order_by(*newest_first)
    )
    listed = await db.fetch(select(json_list(table, FIELDS[:3], newest_first)))
    assert listed[0][0] == "[" + ",".join(row.json for row in objects) + "]"
    assert orjson.loads(listed[0][0])[-1]["txt"] == AWKWARD
    none = await db.fetch(select(json_list(table, FIELDS[:3], newest_first)).where(table.c.k < 0))
    assert none[0][0] == "[]"


def test_a_secret_or_a_wrong_rendering_is_refused() -> None:
    sessions = UserSession.__table__  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="secret"):
        json_object(sessions, (JsonField("t", "token_hash", Rendering.TEXT),))
    with pytest.raises(ValueError, match="not a GraphQL name"):
        json_object(sessions, (JsonField("a'b", "id", Rendering.UUID),))
    with pytest.raises(ValueError, match="is not written as"):
        json_object(sessions, (JsonField("id", "id", Rendering.TEXT),))


def test_only_exact_selections_are_written_by_postgresql() -> None:
    """The compiler's decision (gql_api.graphql.engine.json_selections): a scalar that writes a
    value otherwise, a non-null field on a nullable column, or a relation whose missing row is
    an error keep the rows."""
    from graphql import GraphQLField, GraphQLNonNull, GraphQLObjectType, GraphQLScalarType
    from graphql import GraphQLString as String

    from gql_api.graphql.engine.field_plans import FieldPlan
    from gql_api.graphql.engine.json_selections import json_fields
    from gql_api.graphql.engine.rows import Column as RowColumn
    from gql_api.graphql.engine.rows import Relation
    from gql_api.models import UserProfile

    async def load(*_: Any) -> list[Any]:
        return []

    profile = GraphQLObjectType("P", {"bio": GraphQLField(String)})
    shouting = GraphQLScalarType("Shouting", serialize=lambda value: str(value).upper())

    def plan(bio_type: Any, profile_type: Any = profile) -> FieldPlan:
        bio = FieldPlan("bio", "bio", bio_type, column=RowColumn("bio"))
        return FieldPlan(
            "profile",
            "profile",
            profile_type,
            relation=Relation(load, load, UserProfile),
            children=[FieldPlan("__typename", "", None, typename="P"), bio],
            build=lambda row: {},
        )

    assert json_fields(plan(String)) == (
        JsonField("__typename", constant="P"),
        JsonField("bio", "bio", Rendering.TEXT),
    )
    assert json_fields(plan(shouting)) is None
    assert json_fields(plan(GraphQLNonNull(String))) is None  # bio may be NULL: an error
    assert json_fields(plan(String, GraphQLNonNull(profile))) is None  # no profile: an error
    # Past MAX_FIELDS fields (aliases make new statements), rows again.
    from gql_api.graphql.engine.json_selections import MAX_FIELDS

    wide = plan(String)
    assert wide.children is not None
    bio = wide.children[1]
    column = bio.column
    wide.children = [FieldPlan(f"b{i}", "bio", String, column=column) for i in range(MAX_FIELDS)]
    assert json_fields(wide) is not None
    wide.children.append(FieldPlan("one_more", "bio", String, column=column))
    assert json_fields(wide) is None
