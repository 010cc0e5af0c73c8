"""One function per compiled selection of a row type: a row in, its response object out.

The planned executor walks a selection field by field (``plan_execution``); for the fields a
row's columns answer that walk was most of a page's Python work: per field a loop turn, a
``try``, a dispatch on the plan and a reader call, for each of 20 users, their profiles and
60 sessions. Here the column fields of one selection are compiled, once per document, into
one function whose body is a single dict display in response order::

    def build(row):
        return {"id": r0(row.id), "email": r1(row.email), "__typename": "User",
                "profile": None, ...}

with each column's serialisation and null check written in (``r0`` is the field's
``serialize(convert(value))``, a constant ``__typename`` is a literal). Fields that are not
columns (relations, computed fields, resolvers) keep their place in the display as ``None``
and are left to the field-by-field walk (``rest``), which fills them in.

A column that does not serialise (a null in a non-null field, a value the scalar refuses)
makes ``build`` raise; the executor then reads that object field by field, which reports the
error exactly as graphql-core does. Reading a row twice has no side effect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import GraphQLList, GraphQLNonNull, GraphQLObjectType, get_named_type

from gql_api.graphql.engine.field_plans import FieldPlan
from gql_api.graphql.engine.readers import enum_table
from gql_api.graphql.engine.scalar_shortcuts import shortcut

RowBuilder = Callable[[Any], dict[str, Any]]


class _Refused(Exception):
    """A column the builder cannot serialise: the field-by-field walk will say why."""


def _refuse(_value: Any = None) -> Any:
    raise _Refused


def row_builder(children: list[FieldPlan]) -> tuple[RowBuilder | None, list[FieldPlan]]:
    """The selection's builder (None when no field is a column or a constant) and the fields
    left to the walk, in selection order."""
    if not any(plan.column is not None or plan.typename is not None for plan in children):
        return None, children
    names: dict[str, Any] = {"_refuse": _refuse}
    entries: list[str] = []
    rest: list[FieldPlan] = []
    for index, plan in enumerate(children):
        key = repr(plan.key)
        if plan.typename is not None:
            entries.append(f"{key}: {plan.typename!r}")
        elif plan.column is not None:
            entries.append(f"{key}: {_column_expression(plan, index, names)}")
        else:
            entries.append(f"{key}: None")
            rest.append(plan)
    source = "def build(row):\n    return {" + ", ".join(entries) + "}\n"
    exec(compile(source, "<row builder>", "exec"), names)  # noqa: S102 - our own source
    built: RowBuilder = names["build"]
    return built, rest


def _column_expression(plan: FieldPlan, index: int, names: dict[str, Any]) -> str:
    """``row.<column>`` made the field's JSON value, as ``readers.column_reader`` does."""
    assert plan.column is not None
    column = plan.column
    named: Any = get_named_type(plan.graphql_type)
    value = f"_v{index}"
    read = f"({value} := row.{column.name})"  # a field's Python name: an identifier
    when_null = "_refuse()" if isinstance(plan.graphql_type, GraphQLNonNull) else "None"
    table = enum_table(named, column)
    if table is not None:
        names[f"_e{index}"] = table
        present = f"_e{index}[{value}]"  # KeyError for a value the enum lacks
    else:
        names[f"_s{index}"] = named.serialize
        present = shortcut(named.serialize, value, f"_s{index}({value})", names)
    return f"({when_null} if {read} is None else {present})"


def build_one(build: RowBuilder, row: Any) -> dict[str, Any] | None:
    """The row's object from the selection's builder, or None when a column does not
    serialise (the field-by-field walk then reports it: ``row_builders``)."""
    try:
        built: dict[str, Any] = build(row)
    except Exception:
        return None
    return built


def build_list(plan: FieldPlan, list_type: GraphQLList[Any], rows: Any) -> list[Any] | None:
    """A list of rows' objects when the builder makes each whole (non-null object items, no
    type check, no refused ``@include`` to raise per item, no field left to the walk); None
    otherwise, or when any item is not whole (or null): the items are then completed one by
    one, as graphql-core does, to report where."""
    item = list_type.of_type
    if (
        plan.build is None
        or plan.rest
        or not isinstance(item, GraphQLNonNull)
        or not isinstance(item.of_type, GraphQLObjectType)
        or plan.type_checked
        or plan.children_error is not None
    ):
        return None
    build = plan.build
    try:
        return [build(row) for row in rows]
    except Exception:
        return None
