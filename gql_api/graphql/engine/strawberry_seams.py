"""The service's use of Strawberry's internals, all in one place.

graphql-core's schema behind a Strawberry schema (:func:`core_schema`) and graphql-core's
execution context as Strawberry subclasses it (:data:`StrawberryExecutionContext`) have no
public name; the pipeline, the limits and the tracing span need both.

Strawberry has no public API for calling a field's resolver outside graphql-core's executor,
so the compiler reads a few attributes that Strawberry's own executor path reads: the scalar
registry its argument conversion needs, the parts of a resolver's signature (self/root,
parent, info) and its ``Info`` constructor. graphql-core's ``GraphQLResolveInfo`` and its
helpers are public but grow fields between releases. ``tests/test_graphql_planned.py``
(``test_the_library_seams_still_hold``) calls each function here against the real schema, so
an upgrade that moves one of them fails that test by name instead of a planned document at
run time.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLResolveInfoHelpers,
    GraphQLSchema,
    OperationDefinitionNode,
    VariableValues,
)
from graphql.pyutils import Path
from strawberry.schema.schema import (
    StrawberryGraphQLCoreExecutionContext as StrawberryExecutionContext,
)
from strawberry.types.arguments import convert_arguments

from gql_api.graphql.engine.argument_conversion import Converter, compiled_conversion

__all__ = ["StrawberryExecutionContext"]


def pin_operation_name(ec: Any) -> None:
    """Strawberry's ``ExecutionContext.operation_name`` scans the document on every read
    (metrics, logs, limits, the planner: eight per request) unless the client named the
    operation; once the document is parsed the name it finds is kept as if the client had
    (the same value for every later read: ``_provided_operation_name`` is what it returns)."""
    name = ec.operation_name
    if name is not None:
        ec._provided_operation_name = name


def core_schema(schema: Any) -> GraphQLSchema:
    """graphql-core's schema, which Strawberry keeps in ``_schema`` with no public accessor."""
    core: GraphQLSchema = schema._schema
    return core


@dataclass(frozen=True)
class ResolverParts:
    """What the planned executor needs to call a Strawberry resolver itself."""

    function: Callable[..., Any]  # the decorated function, unwrapped
    pass_source: bool  # takes ``self`` (the parent object) first
    parent_names: tuple[str, ...]  # the keywords ``root`` and ``strawberry.Parent`` go by
    info_name: str | None  # the keyword its ``Info`` goes by


def resolver_parts(resolver: Any) -> ResolverParts:
    """A ``StrawberryResolver``'s function and the special parameters Strawberry fills in
    (``self`` by position, ``root`` and a ``strawberry.Parent`` by keyword, as Strawberry
    passes them; one parameter may be both)."""
    info = resolver.info_parameter
    parents = (resolver.root_parameter, resolver.parent_parameter)
    return ResolverParts(
        function=resolver.wrapped_func,
        pass_source=resolver.self_parameter is not None,
        parent_names=tuple(dict.fromkeys(p.name for p in parents if p is not None)),
        info_name=info.name if info is not None else None,
    )


def argument_converter(schema: Any) -> Callable[[list[Any]], Converter]:
    """Per field's StrawberryArguments, ``(coerced values by GraphQL name, those arguments) ->
    kwargs``: the conversion Strawberry applies before it calls a resolver (input objects become
    their classes, enums their members, names their Python names), compiled where
    ``argument_conversion`` can, else Strawberry's own call."""
    registry: Mapping[Any, Any] = schema.schema_converter.scalar_registry
    config = schema.config

    def strawberrys(values: dict[str, Any], arguments: list[Any]) -> dict[str, Any]:
        return convert_arguments(values, arguments, scalar_registry=registry, config=config)

    def for_arguments(arguments: list[Any]) -> Converter:
        return compiled_conversion(arguments, registry, config) or strawberrys

    return for_arguments


def _gather(awaitables: Any) -> Any:
    return asyncio.gather(*awaitables)


_tracked: set[Any] = set()  # strong references until done, as asyncio asks


def _track(awaitables: Any) -> None:
    for awaitable in awaitables:
        task = asyncio.ensure_future(awaitable)
        _tracked.add(task)
        task.add_done_callback(_tracked.discard)


_HELPERS = GraphQLResolveInfoHelpers(gather=_gather, track=_track)  # type: ignore[arg-type]


@dataclass(frozen=True)
class InfoSite:
    """The per-document half of a resolver's ``Info`` (the rest is per request)."""

    strawberry_schema: Any
    strawberry_field: Any
    field_nodes: list[FieldNode]
    return_type: Any
    parent_type: GraphQLObjectType
    fragments: dict[str, Any]
    operation: OperationDefinitionNode


def resolve_info(
    site: InfoSite, path: list[Any], variables: VariableValues, context: Any
) -> GraphQLResolveInfo:
    """The ``GraphQLResolveInfo`` graphql-core's executor would build for this field here."""
    graphql_path: Path | None = None
    for key in path:
        graphql_path = Path(graphql_path, key, None)
    schema: GraphQLSchema = site.strawberry_schema._schema
    return GraphQLResolveInfo(
        site.field_nodes[0].name.value,
        site.field_nodes,
        site.return_type,
        site.parent_type,
        graphql_path,  # type: ignore[arg-type]
        schema,
        site.fragments,
        None,
        site.operation,
        variables,
        context,
        inspect.isawaitable,  # type: ignore[arg-type]
        None,
        _HELPERS,
    )


def strawberry_info(
    site: InfoSite, path: list[Any], variables: VariableValues, context: Any
) -> Any:
    """The ``strawberry.Info`` graphql-core's executor would hand this resolver, for resolvers
    that read more of it than its context (building one costs a few microseconds)."""
    raw = resolve_info(site, path, variables, context)
    return site.strawberry_schema.config.info_class(_raw_info=raw, _field=site.strawberry_field)
