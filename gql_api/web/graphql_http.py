"""The one GraphQL-over-HTTP entry: an ASGI app that turns a request into the pipeline's input
and its result into a response. Every request to ``/graphql`` comes here, whatever executes it
(gql_api.graphql.engine.pipeline lists the stages); FastAPI keeps the other routes.

What it owns, following the GraphQL-over-HTTP specification (the graphql-http audit in
``tests/test_http_audit.py`` checks it):

- GET (queries only: a mutation is a 405) and POST with a JSON body; other media types are
  refused (a browser sends form and text bodies cross-site without a preflight); a body must be
  a JSON object (a list only when batching is configured); ``query``, ``variables``,
  ``extensions`` and ``operationName`` of the wrong type are a 400.
- Media types: a client that accepts ``application/graphql-response+json`` gets that media
  type, and a request that fails before execution (parse, validation, variable coercion,
  limits) gets 400 without a ``data`` entry; ``application/json`` clients keep the classic 200.
- Persisted queries (APQ) and trusted documents, resolved before execution.
- orjson both ways; the GraphiQL page (gql_api.web.graphiql) for a browser's GET.

Written for this service rather than Strawberry's generic HTTP view, whose streaming, multipart
and framework adapters cost about a fifth of a ``me`` request's CPU (measured side by side) for
features this service does not offer; Strawberry's view still serves the WebSocket
(gql_api.web.graphql_ws).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry.exceptions import MissingQueryError
from strawberry.http import process_result
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from gql_api.config import Settings
from gql_api.graphql.engine.masking import database_error, is_coercion_error, with_code
from gql_api.graphql.engine.persisted import PersistedDocuments
from gql_api.graphql.schema.context import Context, make_context
from gql_api.observability.logs import current_request
from gql_api.web import graphiql

GRAPHQL_PATH = "/graphql"
GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
GRAPHQL_RESPONSE_CONTENT_TYPE = f"{GRAPHQL_RESPONSE_JSON}; charset=utf-8"
_ALLOWED = {
    "GET": frozenset({OperationType.QUERY}),
    "POST": frozenset({OperationType.QUERY, OperationType.MUTATION}),
}


class HTTPError(Exception):
    """A request this entry refuses before GraphQL sees it: a status and a plain-text reason."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers


def wants_graphql_response(request: Request) -> bool:
    return GRAPHQL_RESPONSE_JSON in request.headers.get("accept", "")


class GraphQLEndpoint:
    def __init__(self, schema: Any, *, settings: Settings, state: dict[str, Any]) -> None:
        self.schema = schema
        self.settings = settings
        self.state = state  # holds the Database once the app has started
        self.documents = PersistedDocuments(settings.graphql)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await self.answer(request)
        except HTTPError as error:
            response = PlainTextResponse(error.reason, error.status, headers=error.headers)
        await response(scope, receive, send)

    async def answer(self, request: Request) -> Response:
        if self._is_graphiql_visit(request):
            if not self.settings.graphiql_enabled:
                raise HTTPError(404, "Not Found")
            return graphiql.page_response()
        body = await self._read(request)
        context = await self.context(request)
        if isinstance(body, list):
            results = [await self.execute(request, context, item) for item in body]
            return self.respond(request, [self.encode(r) for r in results], 200)
        result = await self.execute(request, context, body)
        status = 400 if _failed_early(result) and wants_graphql_response(request) else 200
        return self.respond(request, self.encode(result, drop_data=status == 400), status)

    async def context(self, request: Request) -> Context:
        context = await make_context(
            request,
            None,
            settings=self.settings,
            db=self.state["db"],
            sessions=self.state["sessions"],
        )
        entry = current_request()
        if entry is not None and context.viewer is not None:
            entry.user_id = str(context.viewer.user.id)  # from here on, lines name the caller
        return context

    async def execute(
        self, request: Request, context: Context, params: dict[str, Any]
    ) -> ExecutionResult:
        """Persisted document resolution, then the pipeline (gql_api.graphql.engine.pipeline)."""
        viewer = context.viewer
        try:
            resolved = await self.documents.resolve(
                context.db,
                params.get("query"),
                params.get("extensions"),
                is_admin=bool(viewer is not None and viewer.is_admin),
            )
        except Exception as exc:  # the stored documents are out of reach (database down)
            return PreExecutionError(data=None, errors=[database_error(exc)])
        if resolved.error is not None:
            return PreExecutionError(data=None, errors=[resolved.error])
        method = request.method
        try:
            result: ExecutionResult = await self.schema.execute(
                resolved.query,
                variable_values=params.get("variables"),
                context_value=context,
                operation_name=params.get("operationName"),
                allowed_operation_types=_ALLOWED[method],
                operation_extensions=params.get("extensions"),
            )
        except MissingQueryError as error:
            raise HTTPError(400, "No GraphQL query found in the request") from error
        except CannotGetOperationTypeError as error:
            raise HTTPError(400, error.as_http_error_reason()) from error
        except InvalidOperationTypeError as error:
            if method == "GET" and error.operation_type is OperationType.MUTATION:
                raise HTTPError(
                    405, error.as_http_error_reason(method), {"Allow": "POST"}
                ) from error
            raise HTTPError(400, error.as_http_error_reason(method)) from error
        if resolved.store and resolved.sha256 and not isinstance(result, PreExecutionError):
            # Only documents that parsed and validated are kept.
            await self.documents.store(context.db, resolved.sha256, resolved.query or "")
        return result

    def _is_graphiql_visit(self, request: Request) -> bool:
        # A GET carrying a query, or only a persisted query's hash, is an operation.
        if request.method != "GET":
            return False
        params = request.query_params
        if "query" in params or "extensions" in params:
            return False
        accept = request.headers.get("accept", "")
        return "text/html" in accept or "*/*" in accept

    async def _read(self, request: Request) -> dict[str, Any] | list[dict[str, Any]]:
        """The operation(s) the request carries, checked as the specification asks."""
        if request.method == "GET":
            params: dict[str, Any] = dict(request.query_params)
            for name in ("variables", "extensions"):
                if params.get(name):
                    params[name] = _json(params[name])
            return _checked(params)
        media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type != "application/json":
            raise HTTPError(400, "Unsupported content type")
        body = _json(await request.body())
        if isinstance(body, dict):
            return _checked(body)
        if not isinstance(body, list):
            raise HTTPError(400, "The request body must be a JSON object")
        limits = self.settings.graphql
        if not limits.batching:
            raise HTTPError(400, "Batching is not enabled")
        if len(body) > limits.max_batch_size:
            raise HTTPError(400, "Too many operations")
        if not all(isinstance(item, dict) for item in body):
            raise HTTPError(400, "Each operation of a batch must be a JSON object")
        return [_checked(item) for item in body]

    def encode(self, result: ExecutionResult, *, drop_data: bool = False) -> dict[str, Any]:
        if result.errors:
            # Errors raised while parsing never reach the masking stage's codes: settled here.
            result.errors = [with_code(error) for error in result.errors]
        response = dict(process_result(result))
        if drop_data:  # failed before execution: no data entry (graphql-response+json)
            response.pop("data", None)
        return response

    def respond(self, request: Request, payload: object, status: int) -> Response:
        media_type = (
            GRAPHQL_RESPONSE_CONTENT_TYPE if wants_graphql_response(request) else "application/json"
        )
        return Response(orjson.dumps(payload), status, media_type=media_type)


def _json(data: str | bytes) -> Any:
    # orjson refuses invalid UTF-8 and nesting deeper than 1,024 levels with a JSONDecodeError
    # (a 400), where json.loads would recurse until it crashes.
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise HTTPError(400, "Unable to parse request body as JSON") from error


_TYPES = {
    "query": (str, "a string"),
    "variables": (dict, "an object"),
    "extensions": (dict, "an object"),
    "operationName": (str, "a string"),
}


def _checked(params: dict[str, Any]) -> dict[str, Any]:
    for name, (kind, described) in _TYPES.items():
        value = params.get(name)
        if value is not None and not isinstance(value, kind):
            raise HTTPError(
                400, f"The GraphQL operation's `{name}` must be {described} or null, if provided."
            )
    return params


def _failed_early(result: ExecutionResult) -> bool:
    """Failed before execution: parse, validation, limits, or variables that do not coerce."""
    return isinstance(result, PreExecutionError) or (
        result.data is None
        and bool(result.errors)
        and all(is_coercion_error(error) for error in result.errors or ())
    )


class GraphQLEntry:
    """ASGI: HTTP requests for ``/graphql`` go to the endpoint, everything else (other routes,
    websocket handshakes, which nothing accepts) to the app behind. As a FastAPI route would:
    another method is a 405 naming the allowed ones (before any caller lookup), and
    ``/graphql/`` redirects to ``/graphql``."""

    def __init__(
        self, app: ASGIApp, *, endpoint: GraphQLEndpoint, websocket: ASGIApp | None = None
    ) -> None:
        self.app = app
        self.endpoint = endpoint
        self.websocket = websocket  # subscriptions (graphql/websocket.py) when enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == GRAPHQL_PATH and self.websocket:
            await self.websocket(scope, receive, send)
            return
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
