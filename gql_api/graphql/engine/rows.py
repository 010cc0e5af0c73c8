"""Object types whose values are database rows, as the planned executor reads them.

The Strawberry types of users, profiles and sessions (``gql_api.graphql.schema.types``) are
declared once, and every resolver of them returns rows: a field without a resolver reads the
row's column of the same name (Strawberry's default resolver, an attribute read, under the
generic executor). :func:`row_type` registers such a type for the planned executor
(``gql_api.graphql.engine.plans``), which compiles the same fields into readers from a row's
column straight to the response's JSON value, and names the fields that are relations: rows
of another registered type that it loads for every parent of a level at once (the resolvers
load them one parent at a time, through the same DataLoaders). A field with a resolver of its
own is called with the row, by either executor: a new field needs no change here.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from strawberry.types import get_object_definition


@dataclass(frozen=True)
class Column:
    """A field read from a row's column; ``convert`` is the enum its values are members of."""

    name: str
    convert: type[enum.Enum] | None = None


@dataclass(frozen=True)
class Relation:
    """A field holding rows of another registered type, loaded for many parents at once:
    ``load(context, parent_rows, columns)`` returns, per parent, a row, None or a list of rows.

    ``columns`` names the columns the selection reads when it reads nothing else of the rows
    (None when a field of it is called with the whole row): the statement then selects only
    those (and its keys). Most of reading a row is turning its values into Python objects (a
    timestamp costs more than the rest of its row's bookkeeping): reading a page's sessions
    with the four columns a client shows instead of all nine costs about 40% less."""

    load: Callable[[Any, Sequence[Any], frozenset[str] | None], Awaitable[Sequence[Any]]]
    # When the rows' table can write them as JSON (``gql_api.repositories.json_text``):
    # ``load_json(context, parent_rows, fields)`` returns, per parent, the JSON text of what
    # ``load`` would give (None for no row), as an ``orjson.Fragment``; ``table`` is the model
    # whose columns the fields name. The executor takes it when a selection reads only columns
    # it can write (``gql_api.graphql.engine.json_selections``).
    load_json: Callable[[Any, Sequence[Any], tuple[Any, ...]], Awaitable[Sequence[Any]]] | None = (
        None
    )
    table: type | None = None
    # The columns of a parent row that ``load`` and ``load_json`` read (its key).
    parent_columns: frozenset[str] = frozenset({"id"})


@dataclass
class RowType:
    cls: type
    relations: dict[str, Relation] = field(default_factory=dict)

    @cached_property
    def columns(self) -> dict[str, Column]:
        """Per field the row's column: every field of the type without a resolver (derived
        on first use: Strawberry resolves the fields' types lazily)."""
        definition = get_object_definition(self.cls, strict=True)
        return {
            f.python_name: Column(f.python_name, _enum_of(f.type))
            for f in definition.fields
            if f.base_resolver is None and f.python_name not in self.relations
        }


def _enum_of(field_type: Any) -> type[enum.Enum] | None:
    """The Python enum behind a (possibly optional) Strawberry enum type, else None."""
    inner = getattr(field_type, "of_type", field_type)  # StrawberryOptional
    wrapped = getattr(inner, "wrapped_cls", None)  # a Strawberry enum definition
    return wrapped if isinstance(wrapped, type) and issubclass(wrapped, enum.Enum) else None


# Strawberry classes -> their row description.
ROW_TYPES: dict[type, RowType] = {}
# Classes that hold rows without reading them (a connection, its edges, its page info): no
# field of theirs reads a column of the rows they hold, so a document reads of those rows what
# its selections of the rows read (gql_api.graphql.engine.lookahead). Any other object between
# a root field and its rows may read them whole.
ROW_HOLDERS: list[type] = []


def row_holder(cls: type) -> type:
    """Registers ``cls`` (a class decorator, below ``strawberry.type``) as a holder of rows."""
    ROW_HOLDERS.append(cls)
    return cls


def holds_rows(origin: Any) -> bool:
    """Whether the class Strawberry built a type from is a row holder (or a specialisation of
    a generic one, which Strawberry subclasses)."""
    return isinstance(origin, type) and issubclass(origin, tuple(ROW_HOLDERS))


def row_type(cls: type, *, relations: dict[str, Relation] | None = None) -> RowType:
    description = ROW_TYPES[cls] = RowType(cls, relations or {})
    return description


def per_parent(loaded: Any, entries: list[Any]) -> list[Any]:
    # A relation's loader that failed fails the field of every parent.
    return [loaded] * len(entries) if isinstance(loaded, BaseException) else loaded
