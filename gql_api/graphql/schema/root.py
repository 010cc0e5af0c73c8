"""The GraphQL schema: the domain Query and Mutation types merged into one."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import DEFAULT_ALLOWED_OPERATION_TYPES
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from gql_api.graphql.engine.documents import DocumentStore
from gql_api.graphql.engine.limits import PolicyExecutionContext
from gql_api.graphql.schema.audit import AuditQuery
from gql_api.graphql.schema.auth import AuthMutation
from gql_api.graphql.schema.health import HealthQuery
from gql_api.graphql.schema.json_scalar import SCALAR_OVERRIDES
from gql_api.graphql.schema.mfa import MfaMutation
from gql_api.graphql.schema.ops import OpsQuery
from gql_api.graphql.schema.subscriptions import Subscription
from gql_api.graphql.schema.user_mutations import UserMutation
from gql_api.graphql.schema.users import UserQuery

# Each domain module contributes its Query/Mutation types here.
QUERY_TYPES: tuple[type, ...] = (HealthQuery, UserQuery, AuditQuery, OpsQuery)
MUTATION_TYPES: tuple[type, ...] = (AuthMutation, MfaMutation, UserMutation)


class Schema(strawberry.Schema):
    def __init__(self, *args: Any, pipeline: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Parsed and validated documents by text, for Strawberry's pipeline (through the limits
        # extension) and the planned executor alike.
        self.documents = DocumentStore()
        # The request pipeline (gql_api.graphql.engine.pipeline) that runs queries and mutations.
        self.pipeline = pipeline

    async def execute(  # type: ignore[override]
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        if self.pipeline is None:  # a bare schema (tests, the SDL export)
            return await super().execute(
                query,
                variable_values,
                context_value,
                root_value,
                operation_name,
                allowed_operation_types,
                operation_extensions,
            )
        execution_context = ExecutionContext(
            query=query,
            schema=self,
            allowed_operations=(
                DEFAULT_ALLOWED_OPERATION_TYPES
                if allowed_operation_types is None
                else allowed_operation_types
            ),
            context=context_value,
            root_value=root_value,
            variables=variable_values,
            provided_operation_name=operation_name,
            operation_extensions=operation_extensions,
        )
        return cast(ExecutionResult, await self.pipeline.execute(self, execution_context))

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Strawberry logs every error with the whole document; client mistakes are not ours
        to log, and unexpected errors are logged once, with the request id, by the masking
        extension."""


ExtensionFactory = type[SchemaExtension] | Callable[[], SchemaExtension]


def build_schema(
    extensions: Sequence[ExtensionFactory] = (), pipeline: Any = None
) -> strawberry.Schema:
    query = merge_types("Query", QUERY_TYPES)
    mutation = merge_types("Mutation", MUTATION_TYPES) if MUTATION_TYPES else None
    return Schema(
        query=query,
        mutation=mutation,
        # Served over the WebSocket only (graphql/websocket.py, realtime.enabled).
        subscription=Subscription,
        # JSON values that cannot be written out are replaced, not a 500 (json_scalar.py).
        scalar_overrides=SCALAR_OVERRIDES,
        # Variable coercion writes no "Did you mean" for callers the policy excludes.
        execution_context_class=PolicyExecutionContext,
        # The request pipeline's stages (gql_api.graphql.engine.pipeline); none for a bare schema.
        extensions=list(extensions),
        pipeline=pipeline,
    )


def export_sdl() -> str:
    return build_schema().as_str() + "\n"
