"""A faster execution path for validated query documents.

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

It covers what the hot queries use and falls back to the generic executor for everything else:
mutations, fragments, directives, introspection, abstract types, arguments that are not
built-in scalars, resolvers with permissions or extensions, a non-null field that comes back
null, and ANY exception (the generic executor then runs the operation from the start, so errors
keep exactly their usual message, path and code). A query's resolvers have no side effects, so
running them again is safe.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    BooleanValueNode,
    DocumentNode,
    FieldNode,
    FloatValueNode,
    GraphQLEnumType,
    GraphQLError,
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

from gql_api.config import GraphQLSettings
from gql_api.graphql.cost import coerce_variables, operation_cost
from gql_api.graphql.documents import PreparedDocument
from gql_api.graphql.limits import shape_errors
from gql_api.graphql.rows import ROW_RESOLVERS, ROW_TYPES, Column, Relation

_BUILTIN_SCALARS = frozenset({"Int", "Float", "String", "Boolean", "ID"})
_LITERALS = (IntValueNode, FloatValueNode, StringValueNode, BooleanValueNode, NullValueNode)
_NULL_IN_NON_NULL: Any = object()


class Unsupported(Exception):
    """The document, or this run of it, is not for the fast path: use the generic executor."""


@dataclass
class FieldPlan:
    key: str
    python_name: str
    graphql_type: Any  # the field's full output type (NonNull and List wrappers included)
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
    # The cost of an operation without variables, computed once.
    fixed_cost: int | None = None
    # Counts a successful run in the metrics (gql_api.metrics.success_recorder).
    record_success: Callable[[float], None] | None = None


class Info:
    """What our resolvers read from ``info``: the context. Anything else they touch raises
    AttributeError, and the generic executor takes over."""

    __slots__ = ("context",)

    def __init__(self, context: Any) -> None:
        self.context = context


def _argument_value(node: Any, variables: dict[str, Any]) -> Any:
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
            key=key, python_name=strawberry_field.python_name, graphql_type=definition.type
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
            plan.read = _column_reader(row_type.columns[name], plan.graphql_type)
        elif name in row_type.computed:
            plan.compute = row_type.computed[name].compute
        else:
            raise Unsupported("a field the row description does not cover")
        return plan


def _origin(graphql_type: GraphQLObjectType) -> Any:
    definition = (graphql_type.extensions or {}).get("strawberry-definition")
    return getattr(definition, "origin", None)


def _column_reader(column: Column, graphql_type: Any) -> Callable[[Any], Any]:
    """row -> the field's JSON value: ``serialize(convert(row[column]))`` composed once (an
    enum's values are looked up in a table built here). A null in a non-null field raises
    Unsupported, so that the generic executor reports it."""
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
                raise Unsupported("null in a non-null field")
            return null
        if enum_values is not None:
            return enum_values[value]
        return serialize(value if convert is None else convert(value))

    return read


# A pending resolver result: where it goes, its plan, and the awaitable.
_Pending = tuple[Any, Any, FieldPlan, Any]


class Executor:
    def __init__(self, plan: Plan, context: Any, variables: dict[str, Any]) -> None:
        self.plan = plan
        self.context = context
        self.info = Info(context)
        self.variables = variables
        # Relation fields met on this level: per field, where each value goes and its parent row.
        self.relations: dict[int, tuple[FieldPlan, list[tuple[Any, Any, Any]]]] = {}

    async def run(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        pending: list[_Pending] = []
        self._resolve_fields(self.plan.fields, None, data, pending)
        while pending or self.relations:
            batch, pending = pending, []
            relations, self.relations = list(self.relations.values()), {}
            # All resolvers and relations of this level run together, so their DataLoader calls
            # batch and their statements overlap.
            awaitables = [item[3] for item in batch]
            for plan, entries in relations:
                assert plan.relation is not None
                awaitables.append(plan.relation.load(self.context, [e[2] for e in entries]))
            if len(awaitables) == 1:
                try:
                    values = [await awaitables[0]]
                except Exception as exc:
                    raise Unsupported("a resolver raised") from exc
            else:
                values = await asyncio.gather(*awaitables, return_exceptions=True)
            for value in values:
                if isinstance(value, BaseException):
                    raise Unsupported("a resolver raised") from value
            for (container, key, plan, _), value in zip(batch, values[: len(batch)], strict=True):
                self._complete(container, key, plan, plan.graphql_type, value, pending)
            for (plan, entries), loaded in zip(relations, values[len(batch) :], strict=True):
                for (container, key, _), value in zip(entries, loaded, strict=True):
                    self._complete(container, key, plan, plan.graphql_type, value, pending)
        return data

    def _resolve_fields(
        self, plans: list[FieldPlan], source: Any, out: dict[str, Any], pending: list[_Pending]
    ) -> None:
        for plan in plans:
            if plan.read is not None:
                out[plan.key] = plan.read(source)
                continue
            if plan.typename is not None:
                out[plan.key] = plan.typename
                continue
            out[plan.key] = None  # keeps the selection's order
            if plan.relation is not None:
                group = self.relations.get(id(plan))
                if group is None:
                    group = self.relations[id(plan)] = (plan, [])
                group[1].append((out, plan.key, source))
                continue
            if plan.compute is not None:
                value = plan.compute(source, self.context)
            elif plan.resolver is None:
                value = getattr(source, plan.python_name)
            else:
                kwargs = {
                    name: _argument_value(node, self.variables)
                    for name, node in plan.arguments
                    # An unset variable omits the argument: the resolver's default applies.
                    if not isinstance(node, VariableNode) or node.name.value in self.variables
                }
                if plan.info_name is not None:
                    kwargs[plan.info_name] = self.info
                value = (
                    plan.resolver(source, **kwargs) if plan.pass_source else plan.resolver(**kwargs)
                )
            if inspect.isawaitable(value):
                pending.append((out, plan.key, plan, value))
            else:
                self._complete(out, plan.key, plan, plan.graphql_type, value, pending)

    def _complete(
        self,
        container: Any,
        key: Any,
        plan: FieldPlan,
        graphql_type: Any,
        value: Any,
        pending: list[_Pending],
    ) -> None:
        if isinstance(graphql_type, GraphQLNonNull):
            if value is None:
                raise Unsupported("null in a non-null field")
            graphql_type = graphql_type.of_type
        if value is None:
            container[key] = None
            return
        if isinstance(graphql_type, GraphQLList):
            items: list[Any] = [None] * len(value)
            container[key] = items
            for index, item in enumerate(value):
                if inspect.isawaitable(item):
                    raise Unsupported("awaitable list item")
                self._complete(items, index, plan, graphql_type.of_type, item, pending)
            return
        if isinstance(graphql_type, GraphQLObjectType):
            child: dict[str, Any] = {}
            container[key] = child
            assert plan.children is not None
            self._resolve_fields(plan.children, value, child, pending)
            return
        serialized = graphql_type.serialize(value)
        if serialized is None:
            raise Unsupported("a value its scalar cannot represent")
        container[key] = serialized


class FastPath:
    """Plans for documents, and running them. Documents are parsed, size-checked and validated
    by the schema's DocumentStore, as for Strawberry's pipeline, and plans are kept with them
    (so they are bounded by the same byte budget)."""

    def __init__(self, schema: Any, settings: GraphQLSettings, *, rows: bool = True) -> None:
        self.compiler = Compiler(schema, rows=rows)
        self.documents = schema.documents
        self.settings = settings

    def plan_for(self, query: str, operation_name: str | None) -> Plan | None:
        try:
            prepared = self.documents.prepare(query, self.settings)
        except GraphQLError:
            return None  # does not parse: the generic executor reports it
        if operation_name in prepared.plans:
            return prepared.plans[operation_name]  # type: ignore[no-any-return]
        plan = self._compile(prepared, operation_name)
        if operation_name is None or operation_name in prepared.summary.operations:
            prepared.plans[operation_name] = plan  # names of the document only: bounded
        return plan

    def _compile(self, prepared: PreparedDocument, operation_name: str | None) -> Plan | None:
        if prepared.errors(self.compiler.schema, self.settings, hide_suggestions=True):
            return None
        try:
            plan = self.compiler.compile(prepared.document, operation_name)
        except (Unsupported, KeyError):
            return None
        selection = prepared.summary.operations[plan.name]
        # Introspection (whoever asks) and anything over a limit go to the generic executor,
        # which reports them.
        if shape_errors(selection, self.settings, introspection_allowed=False):
            return None
        return plan

    def cost(self, plan: Plan, variables: dict[str, Any], bounds: dict[str, int]) -> int:
        if plan.fixed_cost is not None:
            return plan.fixed_cost
        cost = operation_cost(
            self.compiler.schema,
            plan.document,
            plan.operation,
            variables,
            max_page_size=self.settings.max_page_size,
            bounds=bounds,
        )
        if not plan.operation.variable_definitions:
            plan.fixed_cost = cost  # the bounds are the server's, fixed at start-up
        return cost

    def coerce_variables(self, plan: Plan, raw: dict[str, Any] | None) -> dict[str, Any]:
        coerced = coerce_variables(self.compiler.schema, plan.operation, raw, hide_suggestions=True)
        if isinstance(coerced, list):  # errors: the generic executor reports them
            raise Unsupported("variables")
        return coerced

    async def execute(self, plan: Plan, context: Any, variables: dict[str, Any]) -> dict[str, Any]:
        try:
            return await Executor(plan, context, variables).run()
        except Unsupported:
            raise
        except Exception as exc:  # any error: the generic executor reports it its usual way
            raise Unsupported("a resolver raised") from exc
