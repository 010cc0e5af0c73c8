"""A planned field's arguments: coerced by graphql-core, converted by Strawberry, exactly as the
generic executor hands them to the resolver.

graphql-core's ``get_argument_values`` coerces the field's literals and variables (defaults of
the schema applied, an unset variable leaving the argument out) into plain values; Strawberry's
``convert_arguments`` then makes input objects instances of their classes, enum values their
members and names the resolver's Python names. When no argument reads a variable the coerced
values are worked out once, at compile time; when the variables they read hold scalars (a page
size, a cursor, a flag), once per set of those values (a few short ones kept per field). The
conversion runs per call, so a resolver never shares an input object with another request.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLField,
    Node,
    VariableNode,
    VariableValues,
    get_argument_values,
)

Converter = Callable[[dict[str, Any], list[Any]], dict[str, Any]]

# Coerced argument values kept per field for this many sets of the variables they read, each
# holding at most this many characters of text (a cursor is about 120): well inside the 1 KB per
# token that the document cache counts for a document (``documents.BYTES_PER_TOKEN``), as a field
# reading a variable is several tokens.
KEPT_SETS = 4
MAX_KEPT_TEXT = 128
# Coerced values no resolver can change (also what ``planned`` keeps of variables).
IMMUTABLE = (str, int, float, bool, type(None), enum.Enum, datetime, date, time, uuid.UUID, Decimal)
_UNSET = object()


class ArgumentPlan:
    __slots__ = ("arguments", "convert", "definition", "fixed", "kept", "node", "reads")

    def __init__(
        self, definition: GraphQLField, node: FieldNode, arguments: list[Any], convert: Converter
    ) -> None:
        self.definition, self.node, self.arguments, self.convert = (
            definition,
            node,
            arguments,
            convert,
        )
        self.fixed: dict[str, Any] | None = None
        self.reads = tuple(sorted(_variables_read(node)))
        self.kept: dict[tuple[Any, ...], dict[str, Any]] = {}
        if not self.reads:
            try:
                self.fixed = get_argument_values(definition, node)
            except GraphQLError:
                self.fixed = None  # raised per call, located at the field, as graphql-core does

    def values(self, variables: VariableValues) -> dict[str, Any]:
        """The resolver's keyword arguments (raises as graphql-core and Strawberry raise)."""
        coerced = self.fixed
        if coerced is None:
            key = self._key(variables)
            try:
                coerced = self.kept.get(key) if key is not None else None
            except TypeError:  # an immutable class whose values do not hash
                key = coerced = None
            if coerced is None:
                coerced = get_argument_values(self.definition, self.node, variables)
                if key is not None and len(self.kept) < KEPT_SETS:
                    self.kept[key] = coerced
        return self.convert(coerced, self.arguments)

    def _key(self, variables: VariableValues) -> tuple[Any, ...] | None:
        """The values of the variables read, each with its class (1, 1.0 and True are equal
        in a dict); None when one is not immutable (an input object, a list: coerced per
        call)."""
        key: list[Any] = []
        text = 0
        for name in self.reads:
            value = variables.coerced.get(name, _UNSET)
            if value is not _UNSET and not isinstance(value, IMMUTABLE):
                return None
            if isinstance(value, str):
                text += len(value)
            key += (type(value), value)
        return tuple(key) if text <= MAX_KEPT_TEXT else None


def _variables_read(node: FieldNode) -> set[str]:
    """The variables the field's argument literals read (at any depth of lists and objects)."""
    names: set[str] = set()
    pending: list[Any] = [argument.value for argument in node.arguments or ()]
    while pending:
        value: Node = pending.pop()
        if isinstance(value, VariableNode):
            names.add(value.name.value)
        pending.extend(getattr(value, "values", None) or ())  # list values
        pending.extend(field.value for field in getattr(value, "fields", None) or ())  # objects
    return names
