"""A compiled document (:class:`Plan`) and its fields (:class:`FieldPlan`):
``gql_api.graphql.engine.plans`` compiles them, ``plan_execution`` runs them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    OperationDefinitionNode,
    VariableValues,
)

from gql_api.graphql.engine.arguments import ArgumentPlan
from gql_api.graphql.engine.rows import Column, Relation
from gql_api.graphql.engine.selections import Condition, ConditionError, inclusions
from gql_api.graphql.engine.strawberry_seams import InfoSite
from gql_api.repositories.json_text import JsonField

if TYPE_CHECKING:
    from gql_api.graphql.engine.plans import Compiler


@dataclass
class FieldPlan:
    key: str
    python_name: str
    graphql_type: Any  # the field's full output type (NonNull and List wrappers included)
    nodes: list[FieldNode] = field(default_factory=list)  # where its errors are located
    owner: str = ""  # "Type.field", for graphql-core's null-in-non-null message
    resolver: Callable[..., Any] | None = None
    # Instead: graphql-core's resolve function of the field (Strawberry's, its field extensions
    # and permissions included), called with a GraphQLResolveInfo built at ``info_site``.
    resolve: Callable[..., Any] | None = None
    pass_source: bool = False  # the resolver takes the parent object (self/root) first
    # The value from the parent object alone, when that is all the field needs: an attribute
    # (no resolver), or a resolver taking only the parent (a Relay edge's cursor).
    fetch: Callable[[Any], Any] | None = None
    # For a scalar ``fetch`` gives: its common values written at once (``scalar_shortcuts``).
    leaf: Callable[[Any], Any] | None = None
    parent_names: tuple[str, ...] = ()  # the keywords ``root``/``strawberry.Parent`` go by
    info_name: str | None = None  # the keyword its Info goes by
    info_site: InfoSite | None = None  # when the resolver needs a full Info, or for ``resolve``
    arguments: ArgumentPlan | None = None
    children: list[FieldPlan] | None = None  # for object types
    by_type: dict[str, list[FieldPlan]] | None = None  # for interfaces and unions
    type_checked: bool = False  # its object type has an is_type_of (not met by rows)
    children_error: GraphQLError | None = None  # raised for each object: a refused @include
    typename: str | None = None  # a constant __typename
    # Fields of a type whose values are rows (see the module's docstring):
    read: Callable[[Any], Any] | None = None  # row -> JSON value
    column: Column | None = None  # the column ``read`` reads
    relation: Relation | None = None
    load_columns: frozenset[str] | None = None  # what its rows must hold (see Relation)
    # What PostgreSQL writes of each row instead, when it can (``json_selections``).
    load_json: tuple[JsonField, ...] | None = None
    # When the values are rows (``gql_api.graphql.engine.row_builders``): the children's columns
    # in one function, and the children it leaves to the field-by-field walk.
    build: Callable[[Any], dict[str, Any]] | None = None
    rest: list[FieldPlan] = field(default_factory=list)
    row_type: type | None = None  # the Strawberry type of its values, when they are rows
    # An object type neither of rows nor a row holder (``rows.ROW_HOLDERS``): its fields may
    # read the rows it holds.
    opaque: bool = False
    # A root field's: the columns of the rows it returns that the document reads (all its
    # aliases together), when known (``gql_api.graphql.engine.lookahead``).
    row_columns: frozenset[str] | None = None

    def load(self, context: Any, parents: list[Any]) -> Awaitable[Sequence[Any]]:
        """A relation's values for a level's parents: JSON text when PostgreSQL writes them,
        else rows."""
        assert self.relation is not None
        if self.load_json is not None:
            assert self.relation.load_json is not None
            return self.relation.load_json(context, parents, self.load_json)
        return self.relation.load(context, parents, self.load_columns)


# Combinations of variable-dependent @skip/@include kept per document (more are compiled per
# request, not kept: a document's plans stay bounded).
MAX_VARIANTS = 16


class Unsupported(Exception):
    """Raised by the compiler: the document is for the generic executor."""


@dataclass
class Plan:
    operation: OperationDefinitionNode
    document: DocumentNode
    name: str | None
    compiler: Compiler
    conditional: list[Condition]  # @skip/@include that read a variable
    variants: dict[tuple[Any, ...], list[FieldPlan]] = field(default_factory=dict)
    # Coerced variables by their JSON (cost.variables_key), for a few sets of scalars only
    # (planned.KEPT_VARIABLES): values no one can change, so one coercion serves every request.
    coerced: dict[bytes, dict[str, Any]] = field(default_factory=dict)

    def fields_for(self, variables: VariableValues) -> list[FieldPlan]:
        """The root fields for this request's variables (raises graphql-core's GraphQLError
        for an ``if`` it refuses at the root)."""
        decided = inclusions(self.conditional, variables) if self.conditional else ()
        fields = self.variants.get(decided)
        if fields is None:
            try:
                fields = self.compiler.fields(self, decided)
            except ConditionError as refused:
                raise refused.error from None
            has_errors = any(isinstance(value, GraphQLError) for value in decided)
            if len(self.variants) < MAX_VARIANTS and not has_errors:  # errors are per request
                self.variants[decided] = fields
        return fields
