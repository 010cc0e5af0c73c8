"""The GraphQL schema: the domain Query and Mutation types merged into one."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import strawberry
from strawberry.extensions import ParserCache, SchemaExtension, ValidationCache
from strawberry.tools import merge_types

from gql_api.graphql.health import HealthQuery
from gql_api.graphql.masking import MaskUnexpectedErrors
from gql_api.graphql.users import UserQuery

# Each domain module contributes its Query/Mutation types here.
QUERY_TYPES: tuple[type, ...] = (HealthQuery, UserQuery)
MUTATION_TYPES: tuple[type, ...] = ()


ExtensionFactory = type[SchemaExtension] | Callable[[], SchemaExtension]


def build_schema(extensions: Sequence[ExtensionFactory] = ()) -> strawberry.Schema:
    query = merge_types("Query", QUERY_TYPES)
    mutation = merge_types("Mutation", MUTATION_TYPES) if MUTATION_TYPES else None
    return strawberry.Schema(
        query=query,
        mutation=mutation,
        extensions=[
            # Factories: strawberry builds extensions per request; both caches are module-level.
            lambda: ParserCache(maxsize=1024),
            lambda: ValidationCache(maxsize=1024),
            MaskUnexpectedErrors,
            *extensions,
        ],
    )


def export_sdl() -> str:
    return build_schema().as_str() + "\n"
