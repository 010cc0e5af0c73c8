"""Request limits and the introspection and suggestion policies, for Strawberry's pipeline.

Strawberry ships depth, alias and token limiters, but not a query cost limit, and its limiters
cannot see variables (``first: $n``) or the caller (admins may introspect in production). One
extension does it all:

- parse and validate through the schema's :class:`~gql_api.graphql.engine.documents.DocumentStore`
  (cached by text, bounded by bytes), which refuses documents too large to validate cheaply
  before graphql-core validates them; the planned executor uses the same store;
- on the validated document (its summary, ``gql_api.graphql.engine.analysis``): introspection
  (``__schema``, ``__type``) by policy (everyone, admins only, nobody); depth; aliases; at most
  one expensive mutation (:data:`EXPENSIVE_FIELDS`); the cost (``gql_api.graphql.engine.cost``) with
  the coerced variables, as the planned executor prices it;
- "Did you mean ...?" hints: never produced for callers the policy excludes, neither by
  validation nor by variable coercion (graphql-core's ``hide_suggestions``).

Tokens are limited by the parser itself (``max_tokens``). Repeated non-repeatable directives on
one field are refused by graphql-core's standard ``UniqueDirectivesPerLocationRule``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import GraphQLError, OperationDefinitionNode
from strawberry.extensions import SchemaExtension

from gql_api.config import GraphQLSettings, Settings
from gql_api.graphql.engine.analysis import Selection, find_operation
from gql_api.graphql.engine.cost import (
    coerce_variables,
    list_bounds,
    operation_cost,
    variables_key,
)
from gql_api.graphql.engine.documents import PreparedDocument, limit_error
from gql_api.graphql.engine.strawberry_seams import StrawberryExecutionContext, core_schema

# Root mutations that hash or verify a password, or rotate tokens: seconds of CPU each, so one
# per document (aliases and fragments included).
EXPENSIVE_FIELDS = frozenset(
    {"login", "register", "changePassword", "resetPassword", "refreshToken", "createUser"}
)


def shape_errors(
    selection: Selection, limits: GraphQLSettings, *, introspection_allowed: bool
) -> list[GraphQLError]:
    """The static limits of a validated operation (both executors check them this way)."""
    if selection.introspects and not introspection_allowed:
        return [limit_error("Introspection is only available to administrators", "FORBIDDEN")]
    if selection.depth > limits.max_depth:
        return [
            limit_error(
                f"Query depth {selection.depth} exceeds the limit of {limits.max_depth}",
                "QUERY_TOO_DEEP",
                depth=selection.depth,
                maxDepth=limits.max_depth,
            )
        ]
    if selection.aliases > limits.max_aliases:
        return [
            limit_error(
                f"{selection.aliases} aliases exceed the limit of {limits.max_aliases}",
                "TOO_MANY_ALIASES",
                aliases=selection.aliases,
                maxAliases=limits.max_aliases,
            )
        ]
    expensive = expensive_fields(selection.top_level)
    if expensive > 1:
        return [
            limit_error(
                f"{expensive} password or token operations in one request; send one at a time",
                "TOO_MANY_EXPENSIVE_FIELDS",
                expensive=expensive,
                maxExpensive=1,
            )
        ]
    return []


def expensive_fields(top_level: Mapping[str, int]) -> int:
    return sum(count for name, count in top_level.items() if name in EXPENSIVE_FIELDS)


def cost_error(cost: int, limits: GraphQLSettings) -> GraphQLError | None:
    if cost <= limits.max_cost:
        return None
    return limit_error(
        f"Query cost {cost} exceeds the limit of {limits.max_cost}",
        "QUERY_TOO_COMPLEX",
        cost=cost,
        maxCost=limits.max_cost,
    )


def allowed(policy: str, context: Any) -> bool:
    """Policies: all, admins, off."""
    if policy == "all":
        return True
    viewer = getattr(context, "viewer", None)
    return policy == "admins" and bool(viewer is not None and viewer.is_admin)


def suggestions_allowed(context: Any) -> bool:
    """Whether "Did you mean ...?" hints may reach this caller (contexts without settings:
    tests of the bare schema)."""
    settings = getattr(context, "settings", None)
    return settings is None or allowed(settings.suggestions_policy, context)


class PolicyExecutionContext(StrawberryExecutionContext):
    """graphql-core's executor with suggestions hidden from callers the policy excludes: the
    coercion of variables and arguments then never writes them."""

    @classmethod
    def build(  # type: ignore[override]
        cls,
        schema: Any,
        document: Any,
        root_value: Any = None,
        context_value: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        if not suggestions_allowed(context_value):
            kwargs["hide_suggestions"] = True
        return super().build(schema, document, root_value, context_value, *args, **kwargs)


def request_limits(settings: Settings) -> type[SchemaExtension]:
    """The limits extension class, bound to these settings (strawberry builds one per request)."""
    limits = settings.graphql
    introspection = settings.introspection_policy
    bounds = list_bounds(settings)

    class RequestLimits(SchemaExtension):
        prepared: PreparedDocument | None = None

        def on_parse(self) -> Iterator[None]:
            # A text that does not parse raises its GraphQLError from here (strawberry makes it
            # the response's error, as it did for its own parser cache).
            ctx = self.execution_context
            if ctx.query and ctx.graphql_document is None:
                self.prepared = ctx.schema.documents.prepare(ctx.query, limits)  # type: ignore[attr-defined]
                ctx.graphql_document = self.prepared.document
            yield

        def on_validate(self) -> Iterator[None]:
            # Runs before strawberry's own validation, which is skipped once errors are set:
            # errors set here stop execution before any resolver runs.
            ctx = self.execution_context
            prepared = self.prepared
            if prepared is not None and ctx.pre_execution_errors is None:
                errors = prepared.errors(
                    core_schema(ctx.schema),
                    limits,
                    hide_suggestions=not suggestions_allowed(ctx.context),
                )
                ctx.pre_execution_errors = errors or self._check(prepared, ctx)
            yield

        def _check(self, prepared: PreparedDocument, ctx: Any) -> list[GraphQLError]:
            selection = prepared.summary.operations.get(ctx.operation_name)
            operation = find_operation(prepared.document, ctx.operation_name)
            if selection is None or operation is None:
                return []  # no such operation: graphql-core reports it
            errors = shape_errors(
                selection, limits, introspection_allowed=allowed(introspection, ctx.context)
            )
            if errors:
                return errors
            cost = _request_cost(prepared, operation, ctx, limits=limits, bounds=bounds)
            if cost is None:
                return []  # execution refuses the variables before any resolver runs
            error = cost_error(cost, limits)
            return [] if error is None else [error]

    return RequestLimits


def _request_cost(
    prepared: PreparedDocument,
    operation: OperationDefinitionNode,
    ctx: Any,
    *,
    limits: GraphQLSettings,
    bounds: dict[str, int],
) -> int | None:
    """The operation's cost with this request's variables; None when they do not coerce. A cost
    that no variable can change is kept with the document, and so is the cost of a few small
    sets of variables (most clients send the same ones: a page size, a filter)."""
    cost = prepared.fixed_costs.get(ctx.operation_name)
    if cost is not None:
        return cost
    key = variables_key(ctx.variables)
    if key is not None and (ctx.operation_name, key) in prepared.variable_costs:
        return prepared.variable_costs[ctx.operation_name, key]
    cost = _priced(prepared, operation, ctx, limits=limits, bounds=bounds)
    if key is not None and len(prepared.variable_costs) < VARIABLE_COSTS:
        prepared.variable_costs[ctx.operation_name, key] = cost
    return cost


# Per document: costs kept for this many sets of variables (each at most
# cost.MAX_VARIABLES_KEY bytes as JSON): a few KB beside a document that the cache charges at
# least 1 KB per token.
VARIABLE_COSTS = 8


def _priced(
    prepared: PreparedDocument,
    operation: OperationDefinitionNode,
    ctx: Any,
    *,
    limits: GraphQLSettings,
    bounds: dict[str, int],
) -> int | None:
    variables = coerce_variables(
        core_schema(ctx.schema),
        operation,
        ctx.variables,
        hide_suggestions=not suggestions_allowed(ctx.context),
    )
    if isinstance(variables, list):
        return None
    cost = operation_cost(
        core_schema(ctx.schema),
        prepared.document,
        operation,
        variables,
        max_page_size=limits.max_page_size,
        bounds=bounds,
    )
    if not operation.variable_definitions:
        # Fixed by the document and the server's bounds (set at start-up).
        prepared.fixed_costs[ctx.operation_name] = cost
    return cost
