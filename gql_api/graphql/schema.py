"""The GraphQL schema: the domain Query and Mutation types merged into one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.tools import merge_types

from gql_api.graphql.audit import AuditQuery
from gql_api.graphql.auth import AuthMutation
from gql_api.graphql.documents import DocumentStore
from gql_api.graphql.health import HealthQuery
from gql_api.graphql.json_scalar import SCALAR_OVERRIDES
from gql_api.graphql.limits import PolicyExecutionContext
from gql_api.graphql.mfa import MfaMutation
from gql_api.graphql.ops import OpsQuery
from gql_api.graphql.user_mutations import UserMutation
from gql_api.graphql.users import UserQuery

# Each domain module contributes its Query/Mutation types here.
QUERY_TYPES: tuple[type, ...] = (HealthQuery, UserQuery, AuditQuery, OpsQuery)
MUTATION_TYPES: tuple[type, ...] = (AuthMutation, MfaMutation, UserMutation)


class Schema(strawberry.Schema):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Parsed and validated documents by text, for Strawberry's pipeline (through the limits
        # extension) and the planned executor alike.
        self.documents = DocumentStore()

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Strawberry logs every error with the whole document; client mistakes are not ours
        to log, and unexpected errors are logged once, with the request id, by the masking
        extension."""


ExtensionFactory = type[SchemaExtension] | Callable[[], SchemaExtension]


def build_schema(extensions: Sequence[ExtensionFactory] = ()) -> strawberry.Schema:
    query = merge_types("Query", QUERY_TYPES)
    mutation = merge_types("Mutation", MUTATION_TYPES) if MUTATION_TYPES else None
    return Schema(
        query=query,
        mutation=mutation,
        # JSON values that cannot be written out are replaced, not a 500 (json_scalar.py).
        scalar_overrides=SCALAR_OVERRIDES,
        # Variable coercion writes no "Did you mean" for callers the policy excludes.
        execution_context_class=PolicyExecutionContext,
        # The request pipeline's stages (gql_api.graphql.pipeline); none for a bare schema.
        extensions=list(extensions),
    )


def export_sdl() -> str:
    return build_schema().as_str() + "\n"
