"""One field of a plan (``gql_api.graphql.engine.plans`` compiles them, ``plan_execution``
runs them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graphql import FieldNode, GraphQLError

from gql_api.graphql.engine.arguments import ArgumentPlan
from gql_api.graphql.engine.rows import Relation
from gql_api.graphql.engine.strawberry_seams import InfoSite


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
    parent_name: str | None = None  # the keyword a strawberry.Parent parameter goes by
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
    compute: Callable[[Any, Any], Any] | None = None  # (row, context) -> field value
    relation: Relation | None = None
    to_source: Callable[[Any], Any] | None = None  # row -> the Strawberry object, for a resolver
