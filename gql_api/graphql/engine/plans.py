"""The planned executor's compiler: validated query documents compiled into plans (run by
``gql_api.graphql.engine.plan_execution``).

graphql-core's generic executor spends ~10 µs per field; this module compiles a validated
query, once per document text, into a plan: per response key its field, how to get the value
(the attribute, or the Strawberry resolver the generic executor would call, with the same
arguments: ``gql_api.graphql.engine.arguments``) and how to serialise it (the schema's
``serialize``).
Fragments, ``@skip``/``@include`` and merged fields are resolved here with graphql-core's
``CollectFields`` semantics (``gql_api.graphql.engine.selections``); ``__typename`` is a constant.

Values of the types registered in ``gql_api.graphql.engine.rows`` are database rows: their
column fields compile into one function from a row to its response object
(``gql_api.graphql.engine.row_builders``), and relations load for every parent of a level at
once. Any other field of theirs calls its Strawberry resolver with the row, as the generic
executor does: a new field needs no change.

Whether a document runs here is decided once, when it is compiled (:class:`Unsupported` is
raised by the compiler only): mutations, subscriptions and introspection stay with the generic
executor. A field with Strawberry field extensions (permissions among them)
is resolved through Strawberry's own resolve function, extensions and all. A
document that compiled runs here exactly once: an error raised while it runs is answered as
graphql-core answers it (null at the field and the error with its path; a null in a non-null
field goes up to the nearest nullable parent, or makes ``data`` null).
"""

from __future__ import annotations

import operator
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    get_named_type,
    get_nullable_type,
    is_abstract_type,
    is_leaf_type,
    is_list_type,
)

from gql_api.graphql.engine.abstract_types import awaits_type_checks
from gql_api.graphql.engine.arguments import ArgumentPlan
from gql_api.graphql.engine.field_plans import FieldPlan, Plan, Unsupported
from gql_api.graphql.engine.json_selections import json_fields
from gql_api.graphql.engine.lookahead import hint_root_fields
from gql_api.graphql.engine.readers import (
    as_coerced,
    column_reader,
    reads_only_context,
    strawberry_origin,
)
from gql_api.graphql.engine.row_builders import row_builder
from gql_api.graphql.engine.rows import ROW_TYPES, RowType, holds_rows
from gql_api.graphql.engine.scalar_shortcuts import leaf_writer
from gql_api.graphql.engine.selections import (
    Collector,
    ConditionError,
    Fields,
    conditional_selections,
)
from gql_api.graphql.engine.strawberry_seams import (
    InfoSite,
    argument_converter,
    core_schema,
    resolver_parts,
)


class Compiler:
    def __init__(self, schema: Any) -> None:
        self.strawberry = schema
        self.schema: GraphQLSchema = core_schema(schema)
        self.names = schema.config.name_converter
        self.converter = argument_converter(schema)

    def compile(self, document: DocumentNode, operation_name: str | None) -> Plan:
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if operation_name is None:
            if len(operations) != 1:
                raise Unsupported("which operation")
            operation = operations[0]
        else:
            matching = [op for op in operations if op.name and op.name.value == operation_name]
            if len(matching) != 1:
                raise Unsupported("which operation")
            operation = matching[0]
        if operation.operation != OperationType.QUERY:
            raise Unsupported("not a query")
        name = operation.name.value if operation.name else None
        conditional = conditional_selections(document, operation)
        plan = Plan(operation, document, name, self, conditional)
        # Every condition true: the widest variant. Any other selects less of it, so one that
        # compiles here compiles for every request.
        everything = tuple(True for _ in conditional)
        plan.variants[everything] = self.fields(plan, everything)
        return plan

    def fields(self, plan: Plan, decided: tuple[Any, ...]) -> list[FieldPlan]:
        conditions = {
            id(condition.node): value
            for condition, value in zip(plan.conditional, decided, strict=True)
        }
        return _Variant(self, plan, Collector(self.schema, plan.document, conditions)).root()


class _Variant:
    """One compilation of a document (one combination of its variable conditions). Field plans
    are shared wherever the same field nodes meet the same parent type (a fragment used in
    several places compiles once)."""

    def __init__(self, compiler: Compiler, plan: Plan, collector: Collector) -> None:
        self.compiler, self.plan, self.collector = compiler, plan, collector
        self.fragments = {
            d.name.value: d
            for d in plan.document.definitions
            if isinstance(d, FragmentDefinitionNode)
        }
        self._compiled: dict[tuple[Any, ...], list[FieldPlan]] = {}
        # Per children list (kept alive in _compiled): its row builder and the fields it leaves.
        self._builders: dict[int, tuple[Any, list[FieldPlan]]] = {}

    def root(self) -> list[FieldPlan]:
        root = self.compiler.schema.query_type
        assert root is not None
        fields = self._fields(self.collector.collect(self.plan.operation.selection_set, root), root)
        hint_root_fields(fields)
        return fields

    def _fields(self, fields: Fields, parent: GraphQLObjectType) -> list[FieldPlan]:
        memo = (parent.name, *(tuple(nodes) for nodes in fields.values()))
        compiled = self._compiled.get(memo)
        if compiled is None:
            compiled = self._compiled[memo] = [
                self._field(list(nodes.values()), parent, key) for key, nodes in fields.items()
            ]
        return compiled

    def _children(self, plan: FieldPlan, nodes: list[FieldNode], named: Any) -> list[FieldPlan]:
        try:
            fields = self.collector.subfields(nodes, named)
        except ConditionError as refused:
            plan.children_error = refused.error  # graphql-core raises it completing each object
            return []
        children = self._fields(fields, named)
        origin = strawberry_origin(named)
        plan.opaque = plan.opaque or (origin not in ROW_TYPES and not holds_rows(origin))
        if origin in ROW_TYPES:  # its values are rows
            plan.row_type = origin
            builder = self._builders.get(id(children))
            if builder is None:
                builder = self._builders[id(children)] = row_builder(children)
            plan.build, plan.rest = builder
        return children

    def _field(self, nodes: list[FieldNode], parent: GraphQLObjectType, key: str) -> FieldPlan:
        name = nodes[0].name.value
        if name == "__typename":
            return FieldPlan(key=key, python_name="", graphql_type=None, typename=parent.name)
        if name.startswith("__"):
            raise Unsupported("introspection")
        definition = parent.fields[name]
        strawberry_field = self.compiler.strawberry.get_field_for_type(name, parent.name)
        if strawberry_field is None:
            raise Unsupported("a field Strawberry does not know")
        extended = bool(strawberry_field.extensions)  # permissions are field extensions too
        plan = FieldPlan(
            key=key,
            python_name=strawberry_field.python_name,
            graphql_type=definition.type,
            nodes=nodes,
            owner=f"{parent.name}.{name}",
        )
        row_type = ROW_TYPES.get(strawberry_origin(parent))
        if row_type is not None and not extended and self._row_field(nodes, plan, row_type):
            return plan
        site = self._site(plan, strawberry_field, definition, parent)  # for a full Info, if needed
        if extended:
            plan.resolve = definition.resolve
            plan.info_site = site
            if definition.args:  # Strawberry converts them itself
                plan.arguments = ArgumentPlan(definition, nodes[0], [], as_coerced)
        elif strawberry_field.base_resolver is not None:
            self._resolver(plan, strawberry_field, definition, site)
        elif nodes[0].arguments:
            raise Unsupported("arguments without a resolver")
        else:
            plan.fetch = operator.attrgetter(plan.python_name)  # Strawberry's default resolver
        named = get_named_type(definition.type)
        if plan.fetch is not None and is_leaf_type(named):
            plan.leaf = _leaf(plan, named)
        if awaits_type_checks(self.compiler.schema, named):
            raise Unsupported("an asynchronous resolve_type or is_type_of")
        if isinstance(named, GraphQLObjectType):
            plan.children = self._children(plan, nodes, named)
            if named.is_type_of is not None:  # checked as graphql-core does
                plan.type_checked, plan.info_site = True, site
        elif is_abstract_type(named):  # children per possible type
            plan.info_site = site
            possible = self.compiler.schema.get_possible_types(named)  # type: ignore[arg-type]
            plan.by_type = {t.name: self._children(plan, nodes, t) for t in possible}
        return plan

    def _resolver(
        self, plan: FieldPlan, strawberry_field: Any, definition: Any, site: InfoSite
    ) -> None:
        parts = resolver_parts(strawberry_field.base_resolver)
        plan.resolver, plan.pass_source = parts.function, parts.pass_source
        plan.parent_names, plan.info_name = parts.parent_names, parts.info_name
        if plan.info_name is not None and not reads_only_context(plan.resolver, plan.info_name):
            plan.info_site = site
        if plan.pass_source and not (plan.info_name or plan.parent_names or definition.args):
            plan.fetch = plan.resolver  # the parent object is all it takes
        if definition.args:
            plan.arguments = ArgumentPlan(
                definition,
                plan.nodes[0],
                strawberry_field.arguments,
                self.compiler.converter(strawberry_field.arguments),
            )

    def _site(
        self, plan: FieldPlan, strawberry_field: Any, definition: Any, parent: Any
    ) -> InfoSite:
        return InfoSite(
            strawberry_schema=self.compiler.strawberry,
            strawberry_field=strawberry_field,
            field_nodes=plan.nodes,
            return_type=definition.type,
            parent_type=parent,
            fragments=self.fragments,
            operation=self.plan.operation,
        )

    def _row_field(self, nodes: list[FieldNode], plan: FieldPlan, row_type: RowType) -> bool:
        """A field of a row type read straight from the row (a column) or loaded for the whole
        level (a relation); False for any other (its resolver is called with the row)."""
        name = plan.python_name
        named = get_named_type(plan.graphql_type)
        if nodes[0].arguments:
            return False
        if name in row_type.relations and isinstance(named, GraphQLObjectType):
            plan.relation = row_type.relations[name]
            plan.children = self._children(plan, nodes, named)
            plan.load_columns = read_columns(plan)
            plan.load_json = json_fields(plan)
            return True
        if (
            name in row_type.columns
            and not isinstance(named, GraphQLObjectType)
            and not is_list_type(get_nullable_type(plan.graphql_type))  # read as one value
        ):
            plan.column = row_type.columns[name]
            plan.read = column_reader(plan.column, plan.graphql_type, plan.owner)
            return True
        return False


def _leaf(plan: FieldPlan, named: Any) -> Any:
    """The leaf writer of a scalar the parent object gives (``scalar_shortcuts``): not for a
    list of them, which is completed item by item."""
    if is_list_type(get_nullable_type(plan.graphql_type)):
        return None
    return leaf_writer(named.serialize, non_null=isinstance(plan.graphql_type, GraphQLNonNull))


def read_columns(plan: FieldPlan) -> frozenset[str] | None:
    """The columns a relation's selection reads, when its row builder reads all it shows;
    None when a field is left to the walk (a resolver or a relation: it gets the whole row)."""
    if plan.build is None or plan.rest or plan.children_error is not None:
        return None
    assert plan.children is not None
    return frozenset(child.column.name for child in plan.children if child.column is not None)
