"""The planned executor's compiler: validated query documents compiled into plans (run by
``gql_api.graphql.planned``).

graphql-core's generic executor spends ~10 µs per field (a ResolveInfo, a path entry, a task or
two); on a page of users that is most of the request. This module compiles a validated query,
once per document text, into a plan: per field its response key, how to get the value (the
attribute, or the same Strawberry resolver the generic executor would call) and how to serialise
it (the schema's own ``serialize``). Executing the plan walks the objects the resolvers return,
breadth first, gathering every pending resolver of a level at once so DataLoaders batch exactly
as they do under graphql-core.

Under a root field that has a row-returning twin (``gql_api.graphql.rows``), the values of types
with a row description stay database rows: their fields compile into readers that go from the
row's column straight to the JSON value (the same conversion ``from_row`` and the schema's
serializer make, composed once), and their relations are loaded for every parent of a level in
one call. No Strawberry object is built for them.

Whether a document runs here is decided once, when it is compiled (:class:`Unsupported` is
raised by the compiler only): mutations, fragments, directives, introspection, abstract types,
arguments that are not built-in scalars, resolvers with permissions or extensions, and resolvers
that read more of ``info`` than its ``context`` stay with the generic executor. A document that
compiled runs here exactly once: an error raised while it runs is answered as graphql-core
answers it (null at the field and the error with its path; a null in a non-null field goes up
to the nearest nullable parent, or makes ``data`` null), never run again elsewhere.
"""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    BooleanValueNode,
    DocumentNode,
    FieldNode,
    FloatValueNode,
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    IntValueNode,
    NullValueNode,
    OperationDefinitionNode,
    OperationType,
    StringValueNode,
    VariableNode,
    get_named_type,
)

from gql_api.graphql.rows import ROW_RESOLVERS, ROW_TYPES, Column, Relation

_BUILTIN_SCALARS = frozenset({"Int", "Float", "String", "Boolean", "ID"})
_LITERALS = (IntValueNode, FloatValueNode, StringValueNode, BooleanValueNode, NullValueNode)
_NULL_IN_NON_NULL: Any = object()


class Unsupported(Exception):
    """Raised by the compiler: the document is for the generic executor."""


class NullInNonNull(TypeError):
    """A null where the schema promises a value (graphql-core's message and error type)."""


@dataclass
class FieldPlan:
    key: str
    python_name: str
    graphql_type: Any  # the field's full output type (NonNull and List wrappers included)
    node: FieldNode | None = None  # where errors of this field are located
    owner: str = ""  # "Type.field", for graphql-core's null-in-non-null message
    resolver: Callable[..., Any] | None = None
    pass_source: bool = False  # the resolver takes the parent object (self/root) first
    info_name: str | None = None  # the keyword its Info goes by
    arguments: list[tuple[str, Any]] = field(default_factory=list)  # (python name, value node)
    children: list[FieldPlan] | None = None  # for object types
    typename: str | None = None  # a constant __typename
    # Fields of a type whose values are rows (see the module's docstring):
    read: Callable[[Any], Any] | None = None  # row -> JSON value
    compute: Callable[[Any, Any], Any] | None = None  # (row, context) -> field value
    relation: Relation | None = None


@dataclass
class Plan:
    operation: OperationDefinitionNode
    fields: list[FieldPlan]
    document: DocumentNode
    name: str | None


class Info:
    """What planned resolvers get as ``info``: its context. The compiler admits only resolvers
    that read nothing else from it (:func:`reads_only_context`)."""

    __slots__ = ("context",)

    def __init__(self, context: Any) -> None:
        self.context = context


def argument_value(node: Any, variables: dict[str, Any]) -> Any:
    if isinstance(node, VariableNode):
        return variables.get(node.name.value)
    if isinstance(node, NullValueNode):
        return None
    if isinstance(node, IntValueNode):
        return int(node.value)
    if isinstance(node, FloatValueNode):
        return float(node.value)
    if isinstance(node, BooleanValueNode):
        return node.value
    return node.value  # StringValueNode (String and ID arguments)


class Compiler:
    def __init__(self, schema: Any, *, rows: bool = True) -> None:
        self.strawberry = schema
        self.schema: GraphQLSchema = schema._schema
        self.names = schema.config.name_converter
        # Row readers need rows that index by column name (gql_api.reads' direct reads).
        self.rows = rows

    def compile(self, document: DocumentNode, operation_name: str | None) -> Plan:
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if len(operations) != len(document.definitions):
            raise Unsupported("fragments")
        if operation_name is None:
            if len(operations) != 1:
                raise Unsupported("which operation")
            operation = operations[0]
        else:
            matching = [op for op in operations if op.name and op.name.value == operation_name]
            if len(matching) != 1:
                raise Unsupported("which operation")
            operation = matching[0]
        if operation.operation != OperationType.QUERY or operation.directives:
            raise Unsupported("not a plain query")
        for definition in operation.variable_definitions or ():
            if definition.directives:
                raise Unsupported("directives")
        root = self.schema.query_type
        assert root is not None
        fields = self._fields(operation.selection_set, root, rows=False)
        name = operation.name.value if operation.name else None
        return Plan(operation=operation, fields=fields, document=document, name=name)

    def _fields(
        self, selection_set: Any, parent: GraphQLObjectType, *, rows: bool
    ) -> list[FieldPlan]:
        plans: list[FieldPlan] = []
        keys: set[str] = set()
        for selection in selection_set.selections:
            if not isinstance(selection, FieldNode) or selection.directives:
                raise Unsupported("fragments or directives")
            key = selection.alias.value if selection.alias else selection.name.value
            if key in keys:
                raise Unsupported("merged fields")
            keys.add(key)
            plans.append(self._field(selection, parent, key, rows=rows))
        return plans

    def _field(
        self, node: FieldNode, parent: GraphQLObjectType, key: str, *, rows: bool
    ) -> FieldPlan:
        name = node.name.value
        if name == "__typename":
            return FieldPlan(key=key, python_name="", graphql_type=None, typename=parent.name)
        if name.startswith("__"):
            raise Unsupported("introspection")
        definition = parent.fields[name]
        strawberry_field = self.strawberry.get_field_for_type(name, parent.name)
        if strawberry_field is None or strawberry_field.extensions:
            raise Unsupported("unknown field or field extensions")
        if getattr(strawberry_field, "permission_classes", None):
            raise Unsupported("permissions")
        plan = FieldPlan(
            key=key,
            python_name=strawberry_field.python_name,
            graphql_type=definition.type,
            node=node,
            owner=f"{parent.name}.{name}",
        )
        row_type = ROW_TYPES.get(_origin(parent)) if rows else None
        if row_type is not None:
            return self._row_field(node, plan, row_type)
        resolver = strawberry_field.base_resolver
        row_resolver = ROW_RESOLVERS.get((parent.name, name)) if self.rows else None
        if row_resolver is not None:
            rows = True  # from here down, values of row types are rows
        if resolver is not None:
            if resolver.parent_parameter is not None:
                raise Unsupported("parent parameter")
            plan.resolver = resolver.wrapped_func
            plan.pass_source = (
                resolver.self_parameter is not None or resolver.root_parameter is not None
            )
            if row_resolver is not None:
                # The twin takes the same arguments but no parent object.
                plan.resolver, plan.pass_source = row_resolver, False
            plan.info_name = resolver.info_parameter.name if resolver.info_parameter else None
            if plan.info_name is not None and not reads_only_context(plan.resolver, plan.info_name):
                raise Unsupported("a resolver that reads more of info than its context")
            by_graphql_name = {self.names.get_graphql_name(a): a for a in resolver.arguments}
            for argument in node.arguments or ():
                graphql_argument = definition.args[argument.name.value]
                if get_named_type(graphql_argument.type).name not in _BUILTIN_SCALARS:
                    raise Unsupported("argument of a non-scalar type")
                if not isinstance(argument.value, (VariableNode, *_LITERALS)):
                    raise Unsupported("argument value")
                python_name = by_graphql_name[argument.name.value].python_name
                plan.arguments.append((python_name, argument.value))
        elif node.arguments:
            raise Unsupported("arguments without a resolver")
        named = get_named_type(definition.type)
        if isinstance(named, GraphQLObjectType):
            if node.selection_set is None:
                raise Unsupported("object without selection")
            plan.children = self._fields(node.selection_set, named, rows=rows)
        elif not hasattr(named, "serialize"):  # interfaces and unions
            raise Unsupported("abstract type")
        if not isinstance(named, GraphQLObjectType) and node.selection_set is not None:
            raise Unsupported("selection on a leaf")
        return plan

    def _row_field(self, node: FieldNode, plan: FieldPlan, row_type: Any) -> FieldPlan:
        """A field of a row-described type whose values are rows."""
        if node.arguments:
            raise Unsupported("arguments on a row field")
        named = get_named_type(plan.graphql_type)
        name = plan.python_name
        if name in row_type.relations:
            if not isinstance(named, GraphQLObjectType) or node.selection_set is None:
                raise Unsupported("relation to a non-object type")
            plan.relation = row_type.relations[name]
            plan.children = self._fields(node.selection_set, named, rows=True)
            return plan
        if isinstance(named, GraphQLObjectType) or isinstance(plan.graphql_type, GraphQLList):
            raise Unsupported("object or list without a relation")
        if node.selection_set is not None:
            raise Unsupported("selection on a leaf")
        if name in row_type.columns:
            plan.read = _column_reader(row_type.columns[name], plan.graphql_type, plan.owner)
        elif name in row_type.computed:
            plan.compute = row_type.computed[name].compute
        else:
            raise Unsupported("a field the row description does not cover")
        return plan


def _origin(graphql_type: GraphQLObjectType) -> Any:
    definition = (graphql_type.extensions or {}).get("strawberry-definition")
    return getattr(definition, "origin", None)


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


def _column_reader(column: Column, graphql_type: Any, owner: str) -> Callable[[Any], Any]:
    """row -> the field's JSON value: ``serialize(convert(row[column]))`` composed once (an
    enum's values are looked up in a table built here). A null in a non-null field raises
    graphql-core's error for it."""
    named = get_named_type(graphql_type)
    serialize = named.serialize
    name, convert = column.name, column.convert
    enum_class: Any = convert
    null: Any = None if column.if_null is None else serialize(column.if_null)
    if isinstance(graphql_type, GraphQLNonNull) and null is None:
        null = _NULL_IN_NON_NULL
    enum_values = (
        {member.value: serialize(member) for member in enum_class}
        if isinstance(named, GraphQLEnumType) and isinstance(convert, type)
        else None
    )

    def read(row: Any) -> Any:
        value = row[name]
        if value is None:
            if null is _NULL_IN_NON_NULL:
                raise NullInNonNull(f"Cannot return null for non-nullable field {owner}.")
            return null
        if enum_values is not None:
            return enum_values[value]
        return serialize(value if convert is None else convert(value))

    return read
