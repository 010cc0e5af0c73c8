"""The GraphQL HTTP endpoint: Strawberry's FastAPI router plus what the specification and
production need.

- GraphQL-over-HTTP: a client that accepts ``application/graphql-response+json`` gets that media
  type, and a request that fails before execution (parse, validation, variable coercion, limits)
  gets 400 without a ``data`` entry; ``application/json`` clients keep the classic 200.
- Persisted queries (APQ) and trusted documents, resolved before execution.
- orjson for the response body.
- Batching only when configured (Strawberry refuses lists otherwise).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from cross_web import HTTPException
from fastapi.routing import APIWebSocketRoute
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from strawberry.fastapi import GraphQLRouter as StrawberryRouter
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError

from gql_api import graphiql, metrics
from gql_api.config import Settings
from gql_api.graphql.cost import list_bounds
from gql_api.graphql.fastpath import FastPath, Plan, Unsupported
from gql_api.graphql.masking import database_error, is_coercion_error, with_code
from gql_api.graphql.persisted import PersistedDocuments
from gql_api.logs import current_request

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
# The Content-Type of responses in that media type (both lanes send the same).
GRAPHQL_RESPONSE_CONTENT_TYPE = f"{GRAPHQL_RESPONSE_JSON}; charset=utf-8"


def wants_graphql_response(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return GRAPHQL_RESPONSE_JSON in accept


class GraphQLRouter(StrawberryRouter[Any, None]):
    def __init__(self, schema: Any, *, settings: Settings, **kwargs: Any) -> None:
        super().__init__(schema, **kwargs)
        if not kwargs.get("subscription_protocols"):
            # No subscriptions, no WebSocket endpoint: a handshake is closed before any work.
            self.routes[:] = [r for r in self.routes if not isinstance(r, APIWebSocketRoute)]
        self.settings = settings
        self.documents = PersistedDocuments(settings.graphql)
        self.fast = (
            FastPath(
                schema,
                settings.graphql,
                # Row readers index rows by column name, as the direct reads' rows do.
                rows=not settings.database.disable_prepared_statements,
            )
            if settings.graphql.fast_execution
            else None
        )
        self.list_bounds = list_bounds(settings)

    def should_render_graphql_ide(self, request: Any) -> bool:
        # A GET carrying only a persisted query hash is an operation, not a visit to GraphiQL.
        if "extensions" in request.query_params:
            return False
        return bool(super().should_render_graphql_ide(request))

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        # Not Strawberry's page, which loads its assets from a CDN: gql_api.graphiql.
        return graphiql.page_response()

    def decode_json(self, data: str | bytes) -> object:
        # orjson refuses invalid UTF-8 and nesting deeper than 1,024 levels with a
        # JSONDecodeError (a 400), where json.loads would recurse until it crashes.
        value = orjson.loads(data)
        if not isinstance(value, dict | list):
            raise HTTPException(400, "The request body must be a JSON object")
        return value

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    async def execute_single(  # type: ignore[override]
        self,
        request: Request,
        request_adapter: Any,
        sub_response: Response,
        context: Any,
        root_value: Any,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        viewer = getattr(context, "viewer", None)
        try:
            resolved = await self.documents.resolve(
                context.db,
                request_data.query,
                request_data.extensions,
                is_admin=bool(viewer is not None and viewer.is_admin),
            )
        except Exception as exc:  # the stored documents are out of reach (database down)
            return PreExecutionError(data=None, errors=[database_error(exc)])
        if resolved.error is not None:
            return PreExecutionError(data=None, errors=[resolved.error])
        request_data.query = resolved.query
        result = await self._execute_fast(request_data, context)
        if result is None:
            result = await super().execute_single(
                request, request_adapter, sub_response, context, root_value, request_data
            )
        if resolved.store and resolved.sha256 and not isinstance(result, PreExecutionError):
            # Only documents that parsed and validated are kept.
            await self.documents.store(context.db, resolved.sha256, resolved.query or "")
        return result

    async def _execute_fast(self, request_data: GraphQLRequestData, context: Any) -> Any:
        if not isinstance(request_data.query, str):
            return None
        if not isinstance(request_data.operation_name, str | None):
            return None  # the generic path refuses it with its usual 400
        prepared = self.prepare_planned(
            request_data.query, request_data.operation_name, request_data.variables
        )
        if prepared is None:
            return None
        data = await self.run_planned(*prepared, context)
        return None if data is None else ExecutionResult(data=data, errors=None)

    def prepare_planned(
        self, query: str, operation_name: str | None, variables: dict[str, Any] | None
    ) -> tuple[Plan, dict[str, Any]] | None:
        """The plan and coerced variables for a request the planned executor takes on, or None
        when the generic executor must answer (no plan for the document, variables that do not
        coerce, over the cost limit: it reports them). Touches no database."""
        if self.fast is None:
            return None
        plan = self.fast.plan_for(query, operation_name)
        if plan is None:
            return None
        try:
            coerced = self.fast.coerce_variables(plan, variables)
        except Unsupported:
            return None
        if self.fast.cost(plan, coerced, self.list_bounds) > self.settings.graphql.max_cost:
            return None
        return plan, coerced

    async def run_planned(
        self, plan: Plan, variables: dict[str, Any], context: Any
    ) -> dict[str, Any] | None:
        """The plan's ``data``, or None when it declined (any error) and the generic executor
        must run the operation."""
        assert self.fast is not None
        started = time.perf_counter()
        try:
            data = await self.fast.execute(plan, context, variables)
        except Unsupported:
            return None
        entry = current_request()
        if entry is not None:
            viewer = getattr(context, "viewer", None)
            if viewer is not None:
                entry.user_id = str(viewer.user.id)
            entry.operation = plan.name
        if plan.record_success is None:
            plan.record_success = metrics.success_recorder(plan.document, plan.name)
        plan.record_success(time.perf_counter() - started)
        return data

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        if result.errors:
            # Errors raised while parsing through the parser cache skip the operation hooks,
            # so the codes of parse and validation errors are settled here.
            result.errors = [with_code(error) for error in result.errors]
        response = await super().process_result(request, result)
        failed_early = isinstance(result, PreExecutionError) or (
            result.data is None
            and bool(result.errors)
            and all(is_coercion_error(error) for error in result.errors or ())
        )
        if failed_early and wants_graphql_response(request):
            # The request failed before execution: no data entry, and a 400 (see run()).
            response.pop("data", None)
            request.state.graphql_status = 400
        return response

    async def run(self, request: Any, context: Any = None, root_value: Any = None) -> Any:
        response = await super().run(request, context=context, root_value=root_value)
        if isinstance(request, Request) and isinstance(response, Response):
            media_type = response.headers.get("content-type", "")
            if media_type.startswith("application/json") and wants_graphql_response(request):
                response.headers["content-type"] = GRAPHQL_RESPONSE_CONTENT_TYPE
                status = getattr(request.state, "graphql_status", None)
                if status is not None:
                    response.status_code = status
        return response
