"""A planned field's arguments: coerced by graphql-core, converted by Strawberry, exactly as the
generic executor hands them to the resolver.

graphql-core's ``get_argument_values`` coerces the field's literals and variables (defaults of
the schema applied, an unset variable leaving the argument out) into plain values; Strawberry's
``convert_arguments`` then makes input objects instances of their classes, enum values their
members and names the resolver's Python names. When no argument reads a variable the coerced
values are worked out once, at compile time; when the variables they read hold scalars (a page
size, a cursor, a flag) or small input objects and lists of them (a filter), once per set of
those values (a few small ones kept per field). The conversion runs per call, on a copy of
what was kept, so a resolver never shares an input object, or a dict, with another request.
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
MAX_KEPT_PARTS = 32  # values, input objects and lists in one set (this bounds their depth too)
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
        # The coerced values per set of variables, and whether they hold dicts or lists.
        self.kept: dict[tuple[Any, ...], tuple[dict[str, Any], bool]] = {}
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
                kept = self.kept.get(key) if key is not None else None
            except TypeError:  # an immutable class whose values do not hash
                key = kept = None
            if kept is not None:
                coerced = fresh(kept[0]) if kept[1] else kept[0]
            else:
                coerced = get_argument_values(self.definition, self.node, variables)
                if key is not None and len(self.kept) < KEPT_SETS:
                    nested = any(isinstance(v, dict | list) for v in coerced.values())
                    self.kept[key] = (fresh(coerced) if nested else coerced, nested)
        return self.convert(coerced, self.arguments)

    def _key(self, variables: VariableValues) -> tuple[Any, ...] | None:
        """The values of the variables read, each with its class (1, 1.0 and True are equal
        in a dict), input objects and lists as tuples; None when one holds anything else, or
        more than a few values or characters (then they are coerced per call)."""
        budget = _Budget()
        key = tuple(_frozen(variables.coerced.get(name, _UNSET), budget) for name in self.reads)
        return key if budget.parts <= MAX_KEPT_PARTS and budget.text <= MAX_KEPT_TEXT else None


class _Budget:
    __slots__ = ("parts", "text")

    def __init__(self) -> None:
        self.parts = self.text = 0


def _frozen(value: Any, budget: _Budget) -> Any:
    """``value`` as a hashable key with every class in it (over budget: stops early)."""
    budget.parts += 1
    if budget.parts > MAX_KEPT_PARTS:
        return None
    if value is _UNSET or isinstance(value, IMMUTABLE):
        if isinstance(value, str):
            budget.text += len(value)
        return (type(value), value)
    if isinstance(value, dict):
        return (dict, *((name, _frozen(item, budget)) for name, item in value.items()))
    if isinstance(value, list):
        return (list, *(_frozen(item, budget) for item in value))
    budget.parts = MAX_KEPT_PARTS + 1  # a value a resolver could change: not kept
    return None


def fresh(value: Any) -> Any:
    """A copy of coerced values whose dicts and lists a resolver may change (the values in
    them are immutable: ``IMMUTABLE``)."""
    if isinstance(value, dict):
        return {name: fresh(item) for name, item in value.items()}
    if isinstance(value, list):
        return [fresh(item) for item in value]
    return value


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
