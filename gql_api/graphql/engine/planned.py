"""Where the planned executor plugs into Strawberry's pipeline.

:func:`planned_execution` is a schema extension whose ``on_execute`` sets the execution
context's result when the document has a plan (Strawberry's documented place for a faster
executor): parsing, validation, limits and cost, masking, logging and metrics are the other
extensions' and run once whichever executor answers. Whether a document has a plan is decided
when it is first compiled (``gql_api.graphql.engine.plans``) and kept with the parsed document
(``PreparedDocument.plans``); ``gql_api.graphql.engine.plan_execution`` runs it. Every operation the
planned executor answers counts in ``gql_api_graphql_executions_total{executor="planned"}``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from graphql import ExecutionResult, GraphQLError, VariableValues
from strawberry.extensions import SchemaExtension

from gql_api.config import Settings
from gql_api.graphql.engine.arguments import IMMUTABLE, fresh
from gql_api.graphql.engine.cost import coerce_variables, variables_key
from gql_api.graphql.engine.limits import suggestions_allowed
from gql_api.graphql.engine.lookahead import hinting
from gql_api.graphql.engine.plan_execution import Executor, PlanPosition
from gql_api.graphql.engine.plans import Compiler, Plan, Unsupported
from gql_api.observability import metrics

__all__ = ["Executor", "PlanPosition", "Planner", "planned_execution"]


class Planner:
    """Plans by document text, kept with the parsed document (bounded with it)."""

    def __init__(self, schema: Any, settings: Settings) -> None:
        self.compiler = Compiler(schema)
        self.documents = schema.documents
        self.limits = settings.graphql

    def plan_for(self, query: str, operation_name: str | None) -> Plan | None:
        """The plan of a parsed and validated document, or None: the generic executor's."""
        prepared = self.documents.prepare(query, self.limits)
        if operation_name in prepared.plans:
            return prepared.plans[operation_name]  # type: ignore[no-any-return]
        try:
            plan: Plan | None = self.compiler.compile(prepared.document, operation_name)
        except (Unsupported, KeyError, RecursionError):
            plan = None
        if operation_name is None or operation_name in prepared.summary.operations:
            prepared.plans[operation_name] = plan  # names of the document only: bounded
        return plan

    async def run(self, plan: Plan, context: Any, raw: dict[str, Any] | None) -> ExecutionResult:
        key = variables_key(raw)
        kept = plan.coerced.get(key) if key is not None else None
        if kept is not None:
            variables = fresh(kept)
        else:
            coerced = coerce_variables(
                self.compiler.schema,
                plan.operation,
                raw,
                hide_suggestions=not suggestions_allowed(context),
            )
            if isinstance(coerced, list):  # refused before anything runs, as graphql-core does
                return ExecutionResult(None, coerced)
            variables = coerced
            if key is not None and len(plan.coerced) < KEPT_VARIABLES and _keepable(coerced):
                plan.coerced[key] = fresh(coerced)
        values = VariableValues({}, variables)  # graphql-core's form: coerced, no sources
        try:
            fields = plan.fields_for(values)
        except GraphQLError as error:  # a null `if`: graphql-core refuses the operation too
            return ExecutionResult(None, [error])
        with hinting(fields):  # what the root fields' rows must hold, for their resolvers
            return await Executor(plan, fields, context, values).run()


# Per plan: coerced variables kept for this many sets of them (a page size, a cursor, a flag, a
# filter: graphql-core's coercion of two variables cost more than the rest of preparing the
# request). Each set is at most cost.MAX_VARIABLES_KEY bytes as JSON, which also bounds its depth.
KEPT_VARIABLES = 8


def _keepable(value: Any) -> bool:
    """Whether coerced values hold only immutable values, in dicts (input objects) and lists,
    which :func:`arguments.fresh` copies: anything else a resolver could change is coerced per
    request."""
    if isinstance(value, dict):
        return all(_keepable(item) for item in value.values())
    if isinstance(value, list):
        return all(_keepable(item) for item in value)
    return isinstance(value, IMMUTABLE)


def planned_execution(settings: Settings) -> type[SchemaExtension]:
    """The extension class that runs planned documents, bound to these settings."""
    planners: dict[int, Planner] = {}  # per schema (one in an app)

    class PlannedExecution(SchemaExtension):
        async def on_execute(self) -> AsyncIterator[None]:
            ctx = self.execution_context
            schema = ctx.schema
            planner = planners.get(id(schema))
            if planner is None:
                planner = planners[id(schema)] = Planner(schema, settings)
            plan = planner.plan_for(ctx.query, ctx.operation_name) if ctx.query else None
            if plan is not None:
                ctx.result = await planner.run(plan, ctx.context, ctx.variables)
                metrics.mark_planned(ctx)
            yield

    return PlannedExecution
