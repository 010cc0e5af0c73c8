"""How GraphQL object types read from database rows: one description, two users.

A type registered here declares each of its fields as a :class:`Column` (a row column and the
conversion to the field's Python value), a :class:`Computed` value (from the row and the
request's context) or a :class:`Relation` (rows of another type, fetched for many parent rows
at once). ``from_row`` builds the Strawberry object from that description for the generic
executor, and the planned executor (``gql_api.graphql.engine.plans``) compiles the same description
into readers that go from a row straight to the response's JSON values, without building the
Strawberry objects at all. Root fields can offer a row-returning twin of their resolver
(:func:`row_resolver`) so that a whole query stays on rows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Column:
    """A field read from a row's column; ``convert`` makes the field's value of a non-null one,
    ``if_null`` stands in for a null one."""

    name: str
    convert: Callable[[Any], Any] | None = None
    if_null: Any = None

    def read(self, row: Any) -> Any:
        value = getattr(row, self.name)
        if value is None:
            return self.if_null
        return self.convert(value) if self.convert is not None else value


@dataclass(frozen=True)
class Computed:
    """A field computed from the row and the request's context."""

    compute: Callable[[Any, Any], Any]


@dataclass(frozen=True)
class Relation:
    """A field holding rows of another registered type, loaded for many parents at once:
    ``load(context, parent_rows)`` returns, per parent, a row, None or a list of rows."""

    load: Callable[[Any, Sequence[Any]], Awaitable[Sequence[Any]]]


@dataclass(frozen=True)
class RowType:
    columns: dict[str, Column]
    computed: dict[str, Computed] = field(default_factory=dict)
    relations: dict[str, Relation] = field(default_factory=dict)

    def values(self, row: Any) -> dict[str, Any]:
        """The column fields' values, as keyword arguments for the Strawberry type."""
        return {name: column.read(row) for name, column in self.columns.items()}


# Strawberry classes -> their row description.
ROW_TYPES: dict[type, RowType] = {}
# (GraphQL parent type, GraphQL field name) -> a resolver taking the same arguments as the
# field's own resolver and returning rows where that one returns objects.
ROW_RESOLVERS: dict[tuple[str, str], Callable[..., Any]] = {}


def row_type(cls: type, description: RowType) -> RowType:
    ROW_TYPES[cls] = description
    return description


def row_resolver(
    parent: str, field_name: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(resolver: Callable[..., Any]) -> Callable[..., Any]:
        ROW_RESOLVERS[(parent, field_name)] = resolver
        return resolver

    return register


def per_parent(loaded: Any, entries: list[Any]) -> list[Any]:
    # A relation's loader that failed fails the field of every parent.
    return [loaded] * len(entries) if isinstance(loaded, BaseException) else loaded
