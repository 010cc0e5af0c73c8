"""Values of interfaces and unions in a plan: which object type a value is, decided as
graphql-core decides it (the abstract type's ``resolve_type``, else each possible type's
``is_type_of``), with graphql-core's errors word for word (``ExecutionContext``'s
``ensure_valid_runtime_type`` and ``invalid_return_type_error``, which are private)."""

from __future__ import annotations

from inspect import iscoroutinefunction
from typing import Any

from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    GraphQLUnionType,
    default_type_resolver,
    is_object_type,
)
from graphql.pyutils import inspect

from gql_api.graphql.engine.settling import is_pending


def awaits_type_checks(schema: GraphQLSchema, named: GraphQLNamedType) -> bool:
    """Whether telling a value's type may need an await: an ``async`` ``resolve_type`` of an
    interface or union, or an ``async`` ``is_type_of`` of the type or of a type it may be.
    graphql-core awaits them; a plan tells types as it writes a value, so a selection of such a
    type runs on the generic executor (decided when the document compiles, never per value)."""
    checks: list[Any]
    if isinstance(named, GraphQLInterfaceType | GraphQLUnionType):
        checks = [named.resolve_type, *(t.is_type_of for t in schema.get_possible_types(named))]
    elif isinstance(named, GraphQLObjectType):
        checks = [named.is_type_of]
    else:
        return False
    return any(check is not None and iscoroutinefunction(check) for check in checks)


def runtime_type(
    return_type: Any, value: Any, info: GraphQLResolveInfo, nodes: list[FieldNode]
) -> GraphQLObjectType:
    resolve = return_type.resolve_type or default_type_resolver
    name = resolve(value, info, return_type)
    if is_pending(name):
        close = getattr(name, "close", None)
        if close is not None:
            close()
        raise GraphQLError(  # a sync resolve_type returning an awaitable (async ones run generic)
            f"Abstract type '{return_type}' resolved asynchronously: not supported by the"
            " planned executor.",
            nodes,
        )
    where = f"for field '{info.parent_type}.{info.field_name}'"
    if name is None:
        raise GraphQLError(
            f"Abstract type '{return_type}' must resolve to an Object type at runtime {where}."
            f" Either the '{return_type}' type should provide a 'resolve_type' function or each"
            " possible type should provide an 'is_type_of' function.",
            nodes,
        )
    if not isinstance(name, str):
        raise GraphQLError(
            f"Abstract type '{return_type}' must resolve to an Object type at runtime {where}"
            f" with value {inspect(value)}, received '{inspect(name)}', which is not a valid"
            " Object type name.",
            nodes,
        )
    found = info.schema.get_type(name)
    if found is None:
        raise GraphQLError(
            f"Abstract type '{return_type}' was resolved to a type '{name}' that does not exist"
            " inside the schema.",
            nodes,
        )
    if not is_object_type(found):
        raise GraphQLError(
            f"Abstract type '{return_type}' was resolved to a non-object type '{name}'.", nodes
        )
    if not info.schema.is_sub_type(return_type, found):
        raise GraphQLError(
            f"Runtime Object type '{found}' is not a possible type for '{return_type}'.", nodes
        )
    return found  # type: ignore[return-value]


def check_type_of(
    object_type: GraphQLObjectType, value: Any, info: GraphQLResolveInfo, nodes: list[FieldNode]
) -> None:
    """graphql-core's ``is_type_of`` check of an object value (Strawberry sets it on types
    that implement interfaces)."""
    if object_type.is_type_of is not None and not object_type.is_type_of(value, info):
        raise GraphQLError(
            f"Expected value of type '{object_type}' but got: {inspect(value)}.", nodes
        )
