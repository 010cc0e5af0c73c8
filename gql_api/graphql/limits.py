"""Request limits and introspection policy, enforced after validation and before any resolver.

Strawberry ships depth, alias and token limiters, but not a query cost limit, and its limiters
cannot see variables (``first: $n``) or the caller (admins may introspect in production). One
extension does it all on the validated document:

- depth, aliases: static, computed once per document text and cached;
- cost: each field costs 1; a field with ``first``/``last`` multiplies the cost of its selection
  by that page size (the maximum page size where none is given); another list field multiplies
  by its known bound (``User.sessions``: the session cap) or the maximum page size, except the
  ``edges``/``nodes`` of a connection, already bounded by the connection's page size.
  ``__typename`` and introspection fields are free (introspection is gated separately);
- introspection (``__schema``, ``__type``): by policy (everyone, admins only, nobody);
- "Did you mean ...?" hints: stripped from validation errors for callers the policy excludes.

Tokens are limited by the parser itself (``max_tokens``). Repeated non-repeatable directives on
one field are refused by graphql-core's standard ``UniqueDirectivesPerLocationRule``.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    value_from_ast_untyped,
)
from graphql.type.definition import GraphQLNamedType, get_named_type
from strawberry.extensions import SchemaExtension

from gql_api.config import Settings

_SUGGESTION = re.compile(r"\s*Did you mean .*\?$")
_INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})


def limit_error(message: str, code: str, **extensions: Any) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code, **extensions})


@dataclass(frozen=True)
class DocumentShape:
    """What a document asks for, independent of variables and caller."""

    depth: int
    aliases: int
    introspects: bool


def _fragments(document: Any) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


def _operation(document: Any, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((op for op in operations if op.name and op.name.value == name), None)


def _fields(
    selection_set: SelectionSetNode | None, fragments: dict[str, FragmentDefinitionNode]
) -> Iterator[tuple[FieldNode, str | None]]:
    """The fields of a selection set with fragments flattened, each with its type condition."""
    if selection_set is None:
        return
    stack: list[tuple[SelectionSetNode, str | None, frozenset[str]]] = [
        (selection_set, None, frozenset())
    ]
    while stack:
        current, condition, seen = stack.pop()
        for selection in current.selections:
            if isinstance(selection, FieldNode):
                yield selection, condition
            elif isinstance(selection, InlineFragmentNode):
                cond = (
                    selection.type_condition.name.value if selection.type_condition else condition
                )
                stack.append((selection.selection_set, cond, seen))
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = fragments.get(name)
                if fragment is not None and name not in seen:
                    stack.append(
                        (fragment.selection_set, fragment.type_condition.name.value, seen | {name})
                    )


def document_shape(document: Any, operation: OperationDefinitionNode) -> DocumentShape:
    fragments = _fragments(document)
    aliases = 0
    introspects = False
    max_depth = 0
    stack: list[tuple[SelectionSetNode | None, int]] = [(operation.selection_set, 1)]
    while stack:
        selection_set, depth = stack.pop()
        for field, _condition in _fields(selection_set, fragments):
            name = field.name.value
            if field.alias is not None:
                aliases += 1
            if name in _INTROSPECTION_ROOTS:
                introspects = True
                continue  # introspection depth is GraphiQL's business, gated by policy
            if name.startswith("__"):
                continue
            max_depth = max(max_depth, depth)
            if field.selection_set is not None:
                stack.append((field.selection_set, depth + 1))
    return DocumentShape(depth=max_depth, aliases=aliases, introspects=introspects)


class CostCalculator:
    """Cost of an operation given its variables, walking the schema's types."""

    CONNECTION_LISTS = frozenset({"edges", "nodes"})

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        variables: dict[str, Any],
        max_page_size: int,
        list_bounds: dict[str, int],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.max_page_size = max_page_size
        self.list_bounds = list_bounds

    def cost(self, selection_set: SelectionSetNode | None, parent: GraphQLNamedType) -> int:
        total = 0
        for field, condition in _fields(selection_set, self.fragments):
            name = field.name.value
            if name.startswith("__"):
                continue
            owner = self.schema.get_type(condition) if condition else parent
            if not isinstance(owner, GraphQLObjectType) or name not in owner.fields:
                # Interfaces and unions: count the field once; our schema has none of them.
                total += 1
                continue
            definition = owner.fields[name]
            child_type = get_named_type(definition.type)
            multiplier = self._multiplier(owner, name, definition, field)
            total += 1 + multiplier * (
                self.cost(field.selection_set, child_type) if field.selection_set else 0
            )
        return total

    def _multiplier(
        self, owner: GraphQLObjectType, name: str, definition: Any, field: FieldNode
    ) -> int:
        if "first" in definition.args or "last" in definition.args:
            sizes = [self._argument(field, arg) for arg in ("first", "last")]
            given = [s for s in sizes if isinstance(s, int) and s >= 0]
            return max(given) if given else self.max_page_size
        if not _is_list(definition.type):
            return 1
        if name in self.CONNECTION_LISTS and owner.name.endswith("Connection"):
            return 1
        return self.list_bounds.get(f"{owner.name}.{name}", self.max_page_size)

    def _argument(self, field: FieldNode, name: str) -> Any:
        for argument in field.arguments or ():
            if argument.name.value == name:
                value: ValueNode = argument.value
                if isinstance(value, VariableNode):
                    return self.variables.get(value.name.value)
                return value_from_ast_untyped(value, self.variables)
        return None


def list_bounds(settings: Settings) -> dict[str, int]:
    """Known sizes of list fields without page arguments (``Type.field`` -> at most)."""
    return {"User.sessions": settings.auth.max_sessions_per_user}


def operation_cost(
    schema: GraphQLSchema,
    document: Any,
    operation: OperationDefinitionNode,
    variables: dict[str, Any],
    *,
    max_page_size: int,
    bounds: dict[str, int],
) -> int:
    """The cost of one operation of a validated document, given its variables."""
    calculator = CostCalculator(schema, _fragments(document), variables, max_page_size, bounds)
    root = schema.get_root_type(operation.operation)
    assert root is not None
    return calculator.cost(operation.selection_set, root)


def _is_list(type_: Any) -> bool:
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        if isinstance(type_, GraphQLList):
            return True
        type_ = type_.of_type
    return False


_SHAPES: OrderedDict[tuple[str, str | None], DocumentShape | None] = OrderedDict()
_SHAPES_MAX = 2048


def _shape_for(query: str, operation_name: str | None, document: Any) -> DocumentShape | None:
    """The document's shape, cached by its text (documents hash deeply, so not by node)."""
    key = (query, operation_name)
    if key in _SHAPES:
        _SHAPES.move_to_end(key)
        return _SHAPES[key]
    operation = _operation(document, operation_name)
    shape = None if operation is None else document_shape(document, operation)
    _SHAPES[key] = shape
    if len(_SHAPES) > _SHAPES_MAX:
        _SHAPES.popitem(last=False)
    return shape


def _is_admin(context: Any) -> bool:
    viewer = getattr(context, "viewer", None)
    return bool(viewer is not None and viewer.is_admin)


def request_limits(settings: Settings) -> type[SchemaExtension]:
    """The limits extension class, bound to these settings (strawberry builds one per request)."""
    limits = settings.graphql
    introspection = settings.introspection_policy
    suggestions = settings.suggestions_policy
    bounds = list_bounds(settings)

    class RequestLimits(SchemaExtension):
        def on_operation(self) -> Iterator[None]:
            self.execution_context.parse_options["max_tokens"] = limits.max_tokens
            yield

        def on_validate(self) -> Iterator[None]:
            # Runs after ValidationCache (earlier in the extension list) has validated the
            # document and before strawberry decides whether to execute: errors set here stop
            # execution before any resolver runs.
            ctx = self.execution_context
            if ctx.pre_execution_errors:
                if not _allowed(suggestions, ctx.context):
                    ctx.pre_execution_errors = [
                        _without_suggestion(e) for e in ctx.pre_execution_errors
                    ]
            elif ctx.pre_execution_errors is not None and ctx.graphql_document is not None:
                shape = _shape_for(ctx.query or "", ctx.operation_name, ctx.graphql_document)
                if shape is not None:
                    ctx.pre_execution_errors = self._check(shape, ctx)
            yield

        def _check(self, shape: DocumentShape, ctx: Any) -> list[GraphQLError]:
            if shape.introspects and not _allowed(introspection, ctx.context):
                return [
                    limit_error(
                        "Introspection is only available to administrators",
                        "FORBIDDEN",
                    )
                ]
            if shape.depth > limits.max_depth:
                return [
                    limit_error(
                        f"Query depth {shape.depth} exceeds the limit of {limits.max_depth}",
                        "QUERY_TOO_DEEP",
                        depth=shape.depth,
                        maxDepth=limits.max_depth,
                    )
                ]
            if shape.aliases > limits.max_aliases:
                return [
                    limit_error(
                        f"{shape.aliases} aliases exceed the limit of {limits.max_aliases}",
                        "TOO_MANY_ALIASES",
                        aliases=shape.aliases,
                        maxAliases=limits.max_aliases,
                    )
                ]
            operation = _operation(ctx.graphql_document, ctx.operation_name)
            assert operation is not None
            cost = operation_cost(
                ctx.schema._schema,
                ctx.graphql_document,
                operation,
                ctx.variables or {},
                max_page_size=limits.max_page_size,
                bounds=bounds,
            )
            if cost > limits.max_cost:
                return [
                    limit_error(
                        f"Query cost {cost} exceeds the limit of {limits.max_cost}",
                        "QUERY_TOO_COMPLEX",
                        cost=cost,
                        maxCost=limits.max_cost,
                    )
                ]
            return []

    return RequestLimits


def _allowed(policy: str, context: Any) -> bool:
    """Policies: all, admins, off."""
    return policy == "all" or (policy == "admins" and _is_admin(context))


def _without_suggestion(error: GraphQLError) -> GraphQLError:
    message = _SUGGESTION.sub("", error.message)
    if message == error.message:
        return error
    return GraphQLError(message, nodes=error.nodes, extensions=error.extensions)
