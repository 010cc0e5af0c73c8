"""The cost of an operation, and the variables it is priced with.

Each field costs 1; a field with ``first``/``last`` multiplies the cost of its selection by
that page size (the maximum page size where none is given); another list field multiplies by
its known bound (``User.sessions``: the session cap) or the maximum page size, except the
``edges``/``nodes`` of a connection, already bounded by the connection's page size.
``__typename`` and introspection fields are free (introspection is gated separately).

Both executors coerce the variables with :func:`coerce_variables` (defaults applied) and price
the operation with :func:`operation_cost`: one decision, whichever executor runs the request.
A fragment's cost is computed once per calculation, dependencies first
(``gql_api.graphql.engine.analysis.fragment_order``), so the work is linear in the document.
"""

from __future__ import annotations

from typing import Any

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    value_from_ast_untyped,
)
from graphql.execution.values import get_variable_values
from graphql.type.definition import GraphQLNamedType, get_named_type

from gql_api.config import Settings
from gql_api.graphql.engine.analysis import fragment_order, fragments_of
from gql_api.graphql.engine.masking import drop_tracebacks

_CONNECTION_LISTS = frozenset({"edges", "nodes"})


def list_bounds(settings: Settings) -> dict[str, int]:
    """Known sizes of list fields without page arguments (``Type.field`` -> at most)."""
    return {"User.sessions": settings.auth.max_sessions_per_user}


def coerce_variables(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    raw: dict[str, Any] | None,
    *,
    hide_suggestions: bool,
) -> dict[str, Any] | list[GraphQLError]:
    """The operation's variables as execution will see them (defaults applied), or the errors
    that make execution refuse them."""
    if not operation.variable_definitions:
        return {}  # values sent for undeclared variables are ignored, as graphql-core does
    coerced = get_variable_values(
        schema, operation.variable_definitions, raw or {}, hide_suggestions=hide_suggestions
    )
    if isinstance(coerced, list):
        for error in coerced:  # each raised through frames that keep the list: a cycle
            drop_tracebacks(error)
        return coerced
    values: Any = getattr(coerced, "coerced", coerced)  # graphql-core 3.3 wraps them
    return dict(values)


# Sets of variables longer than this as JSON are not kept with a document (costs, coerced values).
MAX_VARIABLES_KEY = 256


def variables_key(variables: Any) -> bytes | None:
    """The variables as canonical JSON (keys sorted), when short enough to keep things by."""
    if not variables:
        return b"{}"
    try:
        key = orjson.dumps(variables, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # not JSON (an in-process caller's Python values): nothing is kept
        return None
    return key if len(key) <= MAX_VARIABLES_KEY else None


class _Calculator:
    def __init__(
        self,
        schema: GraphQLSchema,
        variables: dict[str, Any],
        max_page_size: int,
        bounds: dict[str, int],
    ) -> None:
        self.schema = schema
        self.variables = variables
        self.max_page_size = max_page_size
        self.bounds = bounds
        # A fragment's fields belong to its type condition whatever the parent, so its cost is
        # one number per calculation. Unknown and cyclic spreads (refused by validation) cost 0.
        self.fragments: dict[str, int] = {}

    def selection_set(self, selection_set: SelectionSetNode, parent: GraphQLNamedType) -> int:
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                owner = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selection_set(selection.selection_set, owner or parent)
            elif isinstance(selection, FragmentSpreadNode):
                total += self.fragments.get(selection.name.value, 0)
        return total

    def field(self, node: FieldNode, owner: GraphQLNamedType) -> int:
        name = node.name.value
        if name.startswith("__"):
            return 0
        if not isinstance(owner, GraphQLObjectType) or name not in owner.fields:
            return 1  # interfaces and unions: counted once; our schema has none of them
        definition = owner.fields[name]
        if node.selection_set is None:
            return 1
        below = self.selection_set(node.selection_set, get_named_type(definition.type))
        return 1 + self._multiplier(owner, name, definition, node) * below

    def _multiplier(
        self, owner: GraphQLObjectType, name: str, definition: Any, node: FieldNode
    ) -> int:
        if "first" in definition.args or "last" in definition.args:
            sizes = [self._argument(node, arg) for arg in ("first", "last")]
            given = [s for s in sizes if isinstance(s, int) and s >= 0]
            return max(given) if given else self.max_page_size
        if not _is_list(definition.type):
            return 1
        if name in _CONNECTION_LISTS and owner.name.endswith("Connection"):
            return 1
        return self.bounds.get(f"{owner.name}.{name}", self.max_page_size)

    def _argument(self, node: FieldNode, name: str) -> Any:
        for argument in node.arguments or ():
            if argument.name.value == name:
                if isinstance(argument.value, VariableNode):
                    return self.variables.get(argument.value.name.value)
                return value_from_ast_untyped(argument.value, self.variables)
        return None


def operation_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: dict[str, Any],
    *,
    max_page_size: int,
    bounds: dict[str, int],
) -> int:
    """The cost of one operation of a validated document, given its coerced variables."""
    calculator = _Calculator(schema, variables, max_page_size, bounds)
    fragments = fragments_of(document)
    for name in fragment_order(fragments):
        fragment = fragments[name]
        owner = schema.get_type(fragment.type_condition.name.value)
        if owner is not None:
            calculator.fragments[name] = calculator.selection_set(fragment.selection_set, owner)
    root = schema.get_root_type(operation.operation)
    assert root is not None
    return calculator.selection_set(operation.selection_set, root)


def _is_list(type_: Any) -> bool:
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        if isinstance(type_, GraphQLList):
            return True
        type_ = type_.of_type
    return False
