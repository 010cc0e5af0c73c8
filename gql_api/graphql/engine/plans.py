"""The planned executor's compiler: validated query documents compiled into plans (run by
``gql_api.graphql.engine.plan_execution``).

graphql-core's generic executor spends ~10 µs per field; this module compiles a validated
query, once per document text, into a plan: per response key its field, how to get the value
(the attribute, or the Strawberry resolver the generic executor would call, with the same
arguments: ``gql_api.graphql.engine.arguments``) and how to serialise it (the schema's
``serialize``).
Fragments, ``@skip``/``@include`` and merged fields are resolved here with graphql-core's
``CollectFields`` semantics (``gql_api.graphql.engine.selections``); ``__typename`` is a constant.

Under a root field with a row-returning twin (``gql_api.graphql.engine.rows``), values of
types with a row description stay rows: fields compile into readers from a column to the JSON
value, and relations load for every parent of a level at once. A field the description does
not cover calls its Strawberry resolver on the object ``from_row`` builds: a new field needs no
change.

Whether a document runs here is decided once, when it is compiled (:class:`Unsupported` is
raised by the compiler only): mutations, subscriptions and introspection stay with the generic
executor. A field with Strawberry field extensions (permissions among them)
is resolved through Strawberry's own resolve function, extensions and all. A
document that compiled runs here exactly once: an error raised while it runs is answered as
graphql-core answers it (null at the field and the error with its path; a null in a non-null
field goes up to the nearest nullable parent, or makes ``data`` null).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLList,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    get_named_type,
    is_abstract_type,
)

from gql_api.graphql.engine.arguments import ArgumentPlan
from gql_api.graphql.engine.field_plans import FieldPlan, Plan, Unsupported
from gql_api.graphql.engine.readers import (
    as_coerced,
    column_reader,
    reads_only_context,
    strawberry_origin,
)
from gql_api.graphql.engine.row_builders import row_builder
from gql_api.graphql.engine.rows import ROW_RESOLVERS, ROW_TYPES, RowType
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
    def __init__(self, schema: Any, *, rows: bool = True) -> None:
        self.strawberry = schema
        self.schema: GraphQLSchema = core_schema(schema)
        self.names = schema.config.name_converter
        self.convert = argument_converter(schema)
        # Row readers need rows that index by column name (gql_api.reads' direct reads).
        self.rows = rows

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
            id(node): value for node, value in zip(plan.conditional, decided, strict=True)
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
        return self._fields(self.collector.collect(self.plan.operation.selection_set, root), root)

    def _fields(
        self, fields: Fields, parent: GraphQLObjectType, *, rows: bool = False
    ) -> list[FieldPlan]:
        memo = (parent.name, rows, *(tuple(nodes) for nodes in fields.values()))
        compiled = self._compiled.get(memo)
        if compiled is None:
            compiled = self._compiled[memo] = [
                self._field(list(nodes.values()), parent, key, rows=rows)
                for key, nodes in fields.items()
            ]
        return compiled

    def _children(
        self, plan: FieldPlan, nodes: list[FieldNode], named: Any, *, rows: bool
    ) -> list[FieldPlan]:
        try:
            fields = self.collector.subfields(nodes, named)
        except ConditionError as refused:
            plan.children_error = refused.error  # graphql-core raises it completing each object
            return []
        children = self._fields(fields, named, rows=rows)
        if rows:
            builder = self._builders.get(id(children))
            if builder is None:
                builder = self._builders[id(children)] = row_builder(children)
            plan.build, plan.rest = builder
        return children

    def _field(
        self, nodes: list[FieldNode], parent: GraphQLObjectType, key: str, *, rows: bool
    ) -> FieldPlan:
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
        site = self._site(plan, strawberry_field, definition, parent)  # for a full Info, if needed
        row_type = ROW_TYPES.get(strawberry_origin(parent)) if rows else None
        if row_type is not None:
            if self._row_field(nodes, plan, row_type, parent, extended):
                return plan
            rows = False  # the resolver returns Strawberry objects, as under graphql-core
        row_resolver = None
        if self.compiler.rows and row_type is None and not extended:
            row_resolver = ROW_RESOLVERS.get((parent.name, name))
        if extended:
            plan.resolve = definition.resolve
            plan.info_site = site
            if definition.args:  # Strawberry converts them itself
                plan.arguments = ArgumentPlan(definition, nodes[0], [], as_coerced)
        elif strawberry_field.base_resolver is not None:
            self._resolver(plan, strawberry_field, definition, site, row_resolver)
            rows = rows or row_resolver is not None  # from here down, row types' values are rows
        elif nodes[0].arguments:
            raise Unsupported("arguments without a resolver")
        named = get_named_type(definition.type)
        if isinstance(named, GraphQLObjectType):
            plan.children = self._children(plan, nodes, named, rows=rows)
            if named.is_type_of is not None and not rows:  # checked as graphql-core does
                plan.type_checked, plan.info_site = True, site
        elif is_abstract_type(named):  # children per possible type (their values are objects)
            plan.info_site = site
            possible = self.compiler.schema.get_possible_types(named)  # type: ignore[arg-type]
            plan.by_type = {t.name: self._children(plan, nodes, t, rows=False) for t in possible}
        return plan

    def _resolver(
        self,
        plan: FieldPlan,
        strawberry_field: Any,
        definition: Any,
        site: InfoSite,
        row_resolver: Callable[..., Any] | None,
    ) -> None:
        parts = resolver_parts(strawberry_field.base_resolver)
        plan.resolver, plan.pass_source = parts.function, parts.pass_source
        plan.parent_name, plan.info_name = parts.parent_name, parts.info_name
        if row_resolver is not None:
            # The twin takes the same arguments but no parent object.
            plan.resolver, plan.pass_source, plan.parent_name = row_resolver, False, None
        if plan.info_name is not None and not reads_only_context(plan.resolver, plan.info_name):
            plan.info_site = site
        if definition.args:
            plan.arguments = ArgumentPlan(
                definition, plan.nodes[0], strawberry_field.arguments, self.compiler.convert
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

    def _row_field(
        self,
        nodes: list[FieldNode],
        plan: FieldPlan,
        row_type: RowType,
        parent: Any,
        extended: bool,
    ) -> bool:
        """A field of a row-described type whose values are rows: False when the description
        does not cover it (its resolver then gets the object ``from_row`` builds)."""
        name = plan.python_name
        named = get_named_type(plan.graphql_type)
        covered = (
            not extended
            and not nodes[0].arguments
            and (
                (name in row_type.relations and isinstance(named, GraphQLObjectType))
                or (
                    not isinstance(named, GraphQLObjectType)
                    and not isinstance(plan.graphql_type, GraphQLList)
                    and (name in row_type.columns or name in row_type.computed)
                )
            )
        )
        if not covered:
            from_row = getattr(strawberry_origin(parent), "from_row", None)
            if from_row is None:
                raise Unsupported("a row type without from_row")
            plan.to_source = from_row
            return False
        if name in row_type.relations:
            plan.relation = row_type.relations[name]
            plan.children = self._children(plan, nodes, named, rows=True)
        elif name in row_type.columns:
            plan.column = row_type.columns[name]
            plan.read = column_reader(plan.column, plan.graphql_type, plan.owner)
        else:
            plan.compute = row_type.computed[name].compute
        return True
