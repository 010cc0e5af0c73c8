"""The one GraphQL-over-HTTP entry: Strawberry's ASGI view (``AsyncBaseHTTPView``, its
documented place for a transport) plus what the specification and production need. Every
request to ``/graphql`` comes here, whatever executes it (gql_api.graphql.pipeline lists the
stages); FastAPI keeps the other routes.

- Media types: a client that accepts ``application/graphql-response+json`` gets that media
  type, and a request that fails before execution (parse, validation, variable coercion,
  limits) gets 400 without a ``data`` entry; ``application/json`` clients keep the classic 200.
- Persisted queries (APQ) and trusted documents, resolved before execution.
- orjson for request and response bodies; batching only when configured (Strawberry refuses
  lists otherwise); GET for queries; the GraphiQL page from this package.
"""

from __future__ import annotations

from typing import Any

import orjson
from cross_web import HTTPException
from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError

from gql_api import graphiql
from gql_api.config import Settings
from gql_api.graphql.context import Context, make_context
from gql_api.graphql.masking import database_error, is_coercion_error, with_code
from gql_api.graphql.persisted import PersistedDocuments
from gql_api.logs import current_request

GRAPHQL_PATH = "/graphql"
GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
GRAPHQL_RESPONSE_CONTENT_TYPE = f"{GRAPHQL_RESPONSE_JSON}; charset=utf-8"


def wants_graphql_response(request: Request) -> bool:
    return GRAPHQL_RESPONSE_JSON in request.headers.get("accept", "")


class GraphQLEndpoint(GraphQL[Context, None]):
    def __init__(self, schema: Any, *, settings: Settings, state: dict[str, Any]) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql_enabled else None,
            # No subscriptions: websocket handshakes never reach this view (GraphQLEntry).
            subscription_protocols=(),
        )
        self.settings = settings
        self.state = state  # holds the Database once the app has started
        self.documents = PersistedDocuments(settings.graphql)

    async def get_context(self, request: Any, response: Any) -> Context:
        context = await make_context(request, response, settings=self.settings, db=self.state["db"])
        entry = current_request()
        if entry is not None and context.viewer is not None:
            entry.user_id = str(context.viewer.user.id)  # from here on, lines name the caller
        return context

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
        viewer = context.viewer
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
        result = await super().execute_single(
            request, request_adapter, sub_response, context, root_value, request_data
        )
        if resolved.store and resolved.sha256 and not isinstance(result, PreExecutionError):
            # Only documents that parsed and validated are kept.
            await self.documents.store(context.db, resolved.sha256, resolved.query or "")
        return result

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        if result.errors:
            # Errors raised while parsing skip the operation hooks, so the codes of parse and
            # validation errors are settled here.
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
        response = await super().run(request)
        if isinstance(request, Request) and isinstance(response, Response):
            media_type = response.headers.get("content-type", "")
            if media_type.startswith("application/json") and wants_graphql_response(request):
                response.headers["content-type"] = GRAPHQL_RESPONSE_CONTENT_TYPE
                status = getattr(request.state, "graphql_status", None)
                if status is not None:
                    response.status_code = status
        return response


class GraphQLEntry:
    """ASGI: HTTP requests for ``/graphql`` go to the endpoint, everything else (other routes,
    websocket handshakes, which nothing accepts) to the app behind. As a FastAPI route would:
    another method is a 405 naming the allowed ones (before any caller lookup), and
    ``/graphql/`` redirects to ``/graphql``."""

    def __init__(self, app: ASGIApp, *, endpoint: GraphQLEndpoint) -> None:
        self.app = app
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in _PATHS:
            await self.app(scope, receive, send)
            return
        response: Response | None = None
        if scope["path"] != GRAPHQL_PATH:
            response = RedirectResponse(URL(scope=scope).replace(path=GRAPHQL_PATH))
        elif scope["method"] not in _METHODS:
            response = JSONResponse(
                {"detail": "Method Not Allowed"},
                status_code=405,
                headers={"Allow": ", ".join(_METHODS)},
            )
        if response is None:
            await self.endpoint(scope, receive, send)
        else:
            await response(scope, receive, send)


_PATHS = frozenset({GRAPHQL_PATH, GRAPHQL_PATH + "/"})
_METHODS = ("GET", "POST")
