"""Small pieces of the planned executor's compiler: the test that a resolver reads nothing of
its ``info`` but the context, and readers that go from a row's column to a field's JSON value."""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

from graphql import GraphQLEnumType, GraphQLNonNull, get_named_type

from gql_api.graphql.engine.rows import Column

_NULL_IN_NON_NULL: Any = object()


class NullInNonNull(TypeError):
    """A null where the schema promises a value (graphql-core's message and error type)."""


class ContextOnlyInfo:
    """What a resolver that reads only ``info.context`` gets as ``info`` from the planned
    executor (:func:`reads_only_context` admits it); other resolvers get a full
    ``strawberry.Info`` (``gql_api.graphql.engine.strawberry_seams.strawberry_info``)."""

    __slots__ = ("context",)

    def __init__(self, context: Any) -> None:
        self.context = context


@functools.cache
def reads_only_context(resolver: Callable[..., Any], info_name: str) -> bool:
    """Whether the resolver's source uses its ``info`` parameter only as ``info.context``
    (a resolver whose source cannot be read is assumed to need more)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(resolver)))
    except (OSError, TypeError, SyntaxError):
        return False
    context_reads: set[int] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "context"
            and isinstance(node.value, ast.Name)
            and node.value.id == info_name
        ):
            context_reads.add(id(node.value))
    return all(
        id(node) in context_reads
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and node.id == info_name
    )


def column_reader(column: Column, graphql_type: Any, owner: str) -> Callable[[Any], Any]:
    """row -> the field's JSON value: ``serialize(row.<column>)`` composed once (an enum's
    values, or their members, are looked up in a table built here). A null in a non-null field
    raises graphql-core's error for it."""
    named = get_named_type(graphql_type)
    serialize = named.serialize  # type: ignore[union-attr]
    name = column.name
    non_null = isinstance(graphql_type, GraphQLNonNull)
    enum_values = enum_table(named, column)

    def read(row: Any) -> Any:
        value = getattr(row, name)
        if value is None:
            if non_null:
                raise NullInNonNull(f"Cannot return null for non-nullable field {owner}.")
            return None
        if enum_values is not None:
            return enum_values[value]
        return serialize(value)

    return read


def enum_table(named: Any, column: Column) -> dict[Any, Any] | None:
    """For a column of enum members: member (and its value, as a row stores it) -> the JSON
    value; None for any other column."""
    if not isinstance(named, GraphQLEnumType) or column.convert is None:
        return None
    table: dict[Any, Any] = {}
    for member in column.convert:
        table[member.value] = table[member] = named.serialize(member)
    return table


def as_coerced(values: dict[str, Any], _arguments: list[Any]) -> dict[str, Any]:
    """Arguments as graphql-core coerced them, for a resolve function that converts them."""
    return dict(values)


def strawberry_origin(graphql_type: Any) -> Any:
    """The Python class Strawberry built a GraphQL object type from."""
    definition = (graphql_type.extensions or {}).get("strawberry-definition")
    return getattr(definition, "origin", None)


def serialize_scalar(graphql_type: Any, value: Any) -> Any:
    """A scalar or enum value serialised, refused as graphql-core refuses a null result."""
    serialized = graphql_type.serialize(value)
    if serialized is None:
        raise TypeError(
            f"Expected `{graphql_type.name}.serialize({value!r})` to return non-nullish value,"
            f" returned: None"
        )
    return serialized
