"""Rows as JSON text that PostgreSQL writes: the object a compiled GraphQL selection shows of a
row, byte for byte what the response's encoder (orjson) writes for the values the GraphQL layer
makes of the same columns.

A page's relations (20 profiles, about 60 sessions) were most of its Python work: every value
decoded into a Python object (a timestamp costs most), a dict built per row, and the same
values encoded again. When a selection reads only columns, PostgreSQL can write each object,
or each parent's whole list, as JSON text, and the response splices it unread
(``orjson.Fragment``). One statement per relation and level, as before.

Each :class:`Rendering` is exact for its column type, against what the row path does:

- ``TEXT`` (text, varchar, and INET, which both paths read as its output text): ``to_json``
  escapes as orjson does (the control characters, ``"`` and ``\\``; UTF-8 left as is);
- ``UUID``: its canonical text, ``str(uuid)``;
- ``TIMESTAMP`` (with time zone): ``datetime.isoformat()`` of the UTC value asyncpg reads, the
  fraction only when there is one; +/-infinity as asyncpg reads them (naive ``datetime.max`` and
  ``min``); a year Python cannot hold fails the statement, as decoding it fails the row path;
Other types (enums, JSON, numbers, booleans: none is in a relation's selection today) have no
rendering: such a selection reads rows.
``tests/test_json_text.py`` compares both paths value by value.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Table, Text, case, cast, func, literal_column
from sqlalchemy.dialects.postgresql import INET, aggregate_order_by
from sqlalchemy.sql import ColumnElement
from sqlalchemy.types import DateTime, Integer, String, Uuid
from sqlalchemy.types import Enum as EnumType

from gql_api.models import SECRET_COLUMNS

# Keys and constants are GraphQL names: written into the statement's text, never quoted.
_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")
_ISO_MICROSECONDS = 'YYYY-MM-DD"T"HH24:MI:SS.US'
_NULL: ColumnElement[str] = literal_column("'null'")


class Rendering(enum.Enum):
    TEXT = "text"
    UUID = "uuid"
    TIMESTAMP = "timestamp"


@dataclass(frozen=True)
class JsonField:
    """One member of the object, in response order: a column written as ``rendering`` says, or
    a constant string (``__typename``)."""

    key: str
    column: str | None = None
    rendering: Rendering | None = None
    constant: str | None = None


def rendering_of(column: Column[Any]) -> Rendering | None:
    """How a column of this type is written, or None when it has no exact rendering."""
    sql_type = column.type
    if isinstance(sql_type, INET) or (
        isinstance(sql_type, String) and not isinstance(sql_type, EnumType)
    ):
        return Rendering.TEXT
    if isinstance(sql_type, Uuid):
        return Rendering.UUID
    if isinstance(sql_type, DateTime) and sql_type.timezone:
        return Rendering.TIMESTAMP
    return None


def json_object(table: Table, fields: Sequence[JsonField]) -> ColumnElement[str]:
    """The text of one row's object."""
    parts: list[Any] = []
    for index, member in enumerate(fields):
        _check_name(member.key)
        separator = "," if index else "{"
        parts.append(literal_column(f"'{separator}\"{member.key}\":'"))
        parts.append(_value(table, member))
    parts.append(literal_column("'}'") if fields else literal_column("'{}'"))
    return func.concat(*parts)


def json_list(
    table: Table, fields: Sequence[JsonField], order_by: Sequence[Any]
) -> ColumnElement[str]:
    """The text of a group's list of objects, in ``order_by`` (an aggregate: group the
    statement by the parent's key)."""
    items = func.string_agg(
        json_object(table, fields), aggregate_order_by(literal_column("','"), *order_by)
    )
    return func.concat(literal_column("'['"), items, literal_column("']'"))


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a GraphQL name: {name!r}")


def _sql_text(value: str) -> ColumnElement[str]:
    """A constant of the statement's text (not a parameter: the statement stays one shape)."""
    return literal_column("'" + value.replace("'", "''") + "'")


def _value(table: Table, member: JsonField) -> ColumnElement[Any]:
    if member.constant is not None:
        _check_name(member.constant)
        return _sql_text(f'"{member.constant}"')
    assert member.column is not None and member.rendering is not None
    if member.column in SECRET_COLUMNS:
        raise ValueError(f"{member.column} is a secret and never leaves the repositories")
    column = table.c[member.column]
    if rendering_of(column) is not member.rendering:
        raise ValueError(f"{table.name}.{column.name} is not written as {member.rendering}")
    rendering = member.rendering
    if rendering is Rendering.TEXT:
        written: ColumnElement[Any] = cast(func.to_json(column), Text)
    elif rendering is Rendering.UUID:
        written = func.concat(_sql_text('"'), cast(column, Text), _sql_text('"'))
    else:
        written = _timestamp(column)
    if column.nullable is False:
        return written
    return case((column.is_(None), _NULL), else_=written)


def _timestamp(column: Column[Any]) -> ColumnElement[str]:
    # One to_char per value (the fraction cut when it is all zeros): to_char is most of what a
    # session costs here, and two of them (seconds, then the fraction when there is one) took
    # 1.2 us a value against 0.75 us.
    utc = func.timezone(_sql_text("UTC"), column)  # a timestamp without time zone, in UTC
    iso = func.to_char(utc, _sql_text(_ISO_MICROSECONDS))
    written = func.replace(iso, _sql_text(".000000"), _sql_text(""))
    out_of_range = (column >= literal_column("'10000-01-01 00:00:00+00'::timestamptz")) | (
        column < literal_column("'0001-01-01 00:00:00+00'::timestamptz")
    )
    return case(
        (
            column == literal_column("'infinity'::timestamptz"),
            _sql_text('"9999-12-31T23:59:59.999999"'),
        ),
        (column == literal_column("'-infinity'::timestamptz"), _sql_text('"0001-01-01T00:00:00"')),
        # Out of Python's years: fail the statement, as asyncpg fails to decode the value.
        (
            out_of_range,
            cast(
                cast(func.concat(_sql_text("year out of range: "), cast(column, Text)), Integer),
                Text,
            ),
        ),
        else_=func.concat(_sql_text('"'), written, _sql_text('+00:00"')),
    )
