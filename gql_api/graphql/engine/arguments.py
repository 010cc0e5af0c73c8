"""A planned field's arguments: coerced by graphql-core, converted by Strawberry, exactly as the
generic executor hands them to the resolver.

graphql-core's ``get_argument_values`` coerces the field's literals and variables (defaults of
the schema applied, an unset variable leaving the argument out) into plain values; Strawberry's
``convert_arguments`` then makes input objects instances of their classes, enum values their
members and names the resolver's Python names. When no argument reads a variable the coerced
values are worked out once, at compile time; the conversion runs per call, so a resolver never
shares an input object with another request.
"""

from __future__ import annotations

from collections.abc import Callable
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


class ArgumentPlan:
    __slots__ = ("arguments", "convert", "definition", "fixed", "node")

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
        if not any(_reads_a_variable(argument.value) for argument in node.arguments or ()):
            try:
                self.fixed = get_argument_values(definition, node)
            except GraphQLError:
                self.fixed = None  # raised per call, located at the field, as graphql-core does

    def values(self, variables: VariableValues) -> dict[str, Any]:
        """The resolver's keyword arguments (raises as graphql-core and Strawberry raise)."""
        coerced = self.fixed
        if coerced is None:
            coerced = get_argument_values(self.definition, self.node, variables)
        return self.convert(coerced, self.arguments)


def _reads_a_variable(value: Node) -> bool:
    """Whether a value literal contains a variable (at any depth of lists and objects)."""
    pending: list[Any] = [value]
    while pending:
        node = pending.pop()
        if isinstance(node, VariableNode):
            return True
        pending.extend(getattr(node, "values", None) or ())  # list values
        pending.extend(field.value for field in getattr(node, "fields", None) or ())  # objects
    return False
