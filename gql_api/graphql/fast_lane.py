"""A lean lane for ``POST /graphql``: planned queries answered without FastAPI's routing and
Strawberry's HTTP view.

Once the planned executor answers a query, most of what is left of a request is HTTP plumbing:
routing, dependency solving, the view's request parsing and response building (about half of
the CPU of a ``me`` query, bench/RESULTS.md). This ASGI middleware answers such requests itself:
a JSON body holding a query the planned executor has a plan for, no persisted-query
extension, no browser ``Origin`` (CORS stays with its middleware). Everything else, and every
request the planned executor declines (an error, a mutation, a fragment...), continues to the
full app with its body replayed, so what clients see is always what the full app answers.

It sits inside the request-id, access-log and body-size middlewares, which therefore apply to
both lanes alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gql_api.config import Settings
from gql_api.graphql.context import make_context
from gql_api.graphql.router import GRAPHQL_RESPONSE_CONTENT_TYPE, GRAPHQL_RESPONSE_JSON

if TYPE_CHECKING:
    from gql_api.graphql.router import GraphQLRouter

_GRAPHQL_RESPONSE = GRAPHQL_RESPONSE_JSON.encode()
# Where a context built here waits for the full app (``request.state``).
PREBUILT_CONTEXT = "graphql_context"
# Accept values both lanes answer alike; anything else is negotiated by the full app.
_ACCEPTED = (b"application/json", _GRAPHQL_RESPONSE, b"*/*", b"application/*")


class PlannedQueryLane:
    def __init__(
        self,
        app: ASGIApp,
        *,
        router: GraphQLRouter,
        settings: Settings,
        state: dict[str, Any],
        path: str = "/graphql",
    ) -> None:
        self.app = app
        self.router = router
        self.settings = settings
        self.state = state  # holds the Database once the app has started
        self.path = path
        # With trusted documents only, the full app decides who may send a free-form query.
        self.enabled = router.fast is not None and not settings.graphql.trusted_documents_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            not self.enabled
            or scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] != self.path
        ):
            await self.app(scope, receive, send)
            return
        content_type = accept = None
        for name, value in scope["headers"]:
            # A browser (CORS stays with its middleware), or a repeated Content-Type or Accept:
            # which copy counts is the full app's call, so both lanes answer such a request alike.
            if (
                name == b"origin"
                or (name == b"content-type" and content_type is not None)
                or (name == b"accept" and accept is not None)
            ):
                await self.app(scope, receive, send)
                return
            if name == b"content-type":
                content_type = value
            elif name == b"accept":
                accept = value
        if (
            content_type is None
            or not content_type.startswith(b"application/json")
            or (accept is not None and not any(kind in accept for kind in _ACCEPTED))
        ):
            await self.app(scope, receive, send)
            return

        body = await _read_body(receive)
        if body is None:
            return  # the client went away
        replay = _replaying(body, receive)
        data = await self._answer(scope, replay, body)
        if data is None:
            await self.app(scope, replay, send)
            return
        content = orjson.dumps({"data": data})
        media_type = (
            GRAPHQL_RESPONSE_CONTENT_TYPE.encode()
            if accept is not None and _GRAPHQL_RESPONSE in accept
            else b"application/json"
        )
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", media_type),
                    (b"content-length", str(len(content)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})

    async def _answer(self, scope: Scope, receive: Receive, body: bytes) -> Any:
        """The planned executor's data, or None to leave the request to the full app."""
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if type(payload) is not dict:
            return None
        query = payload.get("query")
        operation_name = payload.get("operationName")
        variables = payload.get("variables")
        if (
            not isinstance(query, str)
            # Persisted queries, and extensions of a wrong type, are the full app's to judge.
            or payload.get("extensions") is not None
            or not isinstance(operation_name, str | None)
            or not isinstance(variables, dict | None)
        ):
            return None
        db = self.state.get("db")
        prepared = self.router.prepare_planned(query, operation_name, variables)
        if db is None or prepared is None:
            return None
        try:
            context = await make_context(
                Request(scope, receive), None, settings=self.settings, db=db
            )
        except Exception:  # the full app runs it again and reports it its usual way
            return None
        # Should the plan decline, the full app takes over this context: the caller is not
        # looked up twice.
        scope.setdefault("state", {})[PREBUILT_CONTEXT] = context
        try:
            return await self.router.run_planned(*prepared, context)
        except Exception:
            return None


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that hands out the already-read body once, then defers to the server."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
