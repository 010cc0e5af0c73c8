"""GraphQL subscriptions over WebSocket (``graphql-transport-ws``, Strawberry's implementation),
as a Strawberry ASGI view of its own; ``endpoint.GraphQLEntry`` hands it the upgrades of
``/graphql`` when ``realtime.enabled``.

What it adds to Strawberry's protocol handler:

- the handshake: the origin must be allowed by the CORS settings (same origin and clients that
  send none, i.e. not browsers, always are); at most ``realtime.max_sockets`` open sockets;
- ``connection_init`` carries ``{"authorization": "Bearer ..."}``, checked as an HTTP request's
  (``auth.current.authenticate``); refused with 4401, or 4429 beyond
  ``realtime.max_sockets_per_user``; the session is checked again when the access token would
  expire and at the session's own end (``SESSION_EXPIRED``, then 4401): ``socket_auth``;
- client messages of at most ``realtime.max_message_bytes`` (else 1009); operations other than
  subscriptions are refused (``OPERATION_NOT_SUPPORTED``: send them over HTTP); the same
  pipeline (limits, cost, introspection policy, masking) as HTTP, through ``schema.subscribe``;
- a server ping every ``realtime.ping_interval``; a socket silent for ``realtime.idle_timeout``
  is closed with 4408.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.http.exceptions import NonJsonMessageReceived, NonTextMessageReceived
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.types.unset import UNSET, UnsetType

from gql_api.config import Settings
from gql_api.graphql.engine.analysis import find_operation
from gql_api.graphql.schema.context import Context, client_address
from gql_api.realtime.hub import Hub
from gql_api.web import socket_auth

CLOSE_TOO_BIG = 1009
CLOSE_IDLE = 4408
_SOCKET_KEY = "gql_api.realtime.socket"


@dataclass
class SocketContext(Context):
    """The context of one WebSocket (all its operations): Strawberry sets the connection_init
    payload here."""

    connection_params: dict[str, Any] = field(kw_only=True, default_factory=dict)


class Adapter(ASGIWebSocketAdapter):
    """Strawberry's adapter with a size cap on client messages and idempotent closing (the hub,
    an operation and the protocol handler may each close the socket)."""

    async def iter_json(
        self, *, ignore_parsing_errors: bool = False
    ) -> AsyncGenerator[object, None]:
        assert isinstance(self.view, GraphQLWebSocket)
        limit = self.view.settings.realtime.max_message_bytes
        try:
            while self.ws.application_state != WebSocketState.DISCONNECTED:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                text = message.get("text")
                if text is None:
                    raise NonTextMessageReceived
                if len(text) > limit:
                    await self.close(CLOSE_TOO_BIG, "Message too big")
                    return
                try:
                    yield self.view.decode_json(text)
                except orjson.JSONDecodeError as exc:
                    if not ignore_parsing_errors:
                        raise NonJsonMessageReceived from exc
        except (WebSocketDisconnect, RuntimeError):
            return

    async def send_json(self, message: Any) -> None:
        if self.ws.application_state == WebSocketState.DISCONNECTED:
            return  # closed by this side already: nothing more goes out
        await super().send_json(message)

    async def close(self, code: int, reason: str) -> None:
        await close_quietly(self.ws, code, reason)


async def close_quietly(ws: WebSocket, code: int, reason: str) -> None:
    if ws.application_state == WebSocketState.DISCONNECTED:
        return
    with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
        await ws.close(code=code, reason=reason)


class Handler(BaseGraphQLTransportWSHandler[Context, None]):
    """Strawberry's graphql-transport-ws handler plus keep-alive, the subscriptions-only rule and
    codes on every error."""

    view: GraphQLWebSocket

    def on_request_accepted(self) -> None:
        super().on_request_accepted()
        self.last_seen = asyncio.get_running_loop().time()
        self.keep_alive = asyncio.create_task(self._keep_alive())

    async def _keep_alive(self) -> None:
        realtime = self.view.settings.realtime
        interval = realtime.ping_interval.total_seconds()
        idle = realtime.idle_timeout.total_seconds()
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(interval, idle))
            if loop.time() - self.last_seen >= idle:
                await self.websocket.close(CLOSE_IDLE, "Keep-alive timeout")
                return
            if self.connection_acknowledged:
                await self.send_message({"type": "ping"})

    async def shutdown(self) -> None:
        self.keep_alive.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.keep_alive
        await super().shutdown()

    async def handle_message(self, message: Any) -> None:
        self.last_seen = asyncio.get_running_loop().time()
        await super().handle_message(message)

    async def handle_subscribe(self, message: Any) -> None:
        if self.connection_acknowledged and not self._is_subscription(message):
            error = {
                "message": "Only subscriptions run over the WebSocket: send queries and "
                "mutations over HTTP",
                "extensions": {"code": "OPERATION_NOT_SUPPORTED"},
            }
            await self.send_message({"id": message["id"], "type": "error", "payload": [error]})
            return
        await super().handle_subscribe(message)

    def _is_subscription(self, message: Any) -> bool:
        """False for a query or mutation; True when it cannot tell (Strawberry then reports the
        parse error or missing operation with its own codes)."""
        try:
            payload = message["payload"]
            prepared = self.schema.documents.prepare(  # type: ignore[attr-defined]
                payload["query"], self.view.settings.graphql
            )
            operation = find_operation(prepared.document, payload.get("operationName"))
        except Exception:
            return True
        return operation is None or operation.operation.value == "subscription"

    async def send_message(self, message: Any) -> None:
        if message.get("type") == "error":
            for error in message.get("payload") or ():
                if isinstance(error, dict):
                    extensions = error.setdefault("extensions", {}) or {}
                    extensions.setdefault("code", "GRAPHQL_VALIDATION_FAILED")
                    error["extensions"] = extensions
        await super().send_message(message)


class GraphQLWebSocket(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = Handler
    websocket_adapter_class = Adapter  # type: ignore[assignment]

    def __init__(self, schema: Any, *, settings: Settings, state: dict[str, Any], hub: Hub):
        realtime = settings.realtime
        super().__init__(
            schema,
            graphql_ide=None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=realtime.init_timeout,
            # Strawberry counts every in-flight operation; only subscriptions are let in.
            max_subscriptions_per_connection=realtime.max_subscriptions_per_socket,
        )
        self.settings = settings
        self.state = state  # holds the Database once the app has started
        self.hub = hub
        pattern = settings.cors_origin_pattern
        self._origin_pattern = re.compile(pattern) if pattern else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ws = WebSocket(scope, receive=receive, send=send)

        async def closer(code: int, reason: str) -> None:
            await close_quietly(ws, code, reason)

        socket = self.hub.open(closer=closer)
        if socket is None:
            await ws.close(code=1013, reason="Too many connections")  # before accept: 403
            return
        scope[_SOCKET_KEY] = socket
        try:
            await self.run(ws)
        finally:
            self.hub.release(socket)

    def is_websocket_origin_allowed(self, request: Any, origin: str) -> bool:
        # The CORS allow-list (gql_api.web.cors): a page may open a socket where it may POST.
        allowed = self.settings.server.cors_origins
        if "*" in allowed or origin in allowed:
            return True
        return bool(self._origin_pattern and self._origin_pattern.fullmatch(origin))

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)

    def encode_json(self, data: object) -> str:
        # Text frames: the protocol (and the graphql-ws and gql clients) refuse binary ones.
        return orjson.dumps(data).decode()

    async def get_context(self, request: Any, response: Any) -> Context:
        socket = request.scope.get(_SOCKET_KEY)
        return SocketContext(
            settings=self.settings,
            db=self.state["db"],
            request_id=uuid.uuid4().hex,
            client_ip=client_address(request, self.settings.server.trusted_proxies),
            user_agent=request.headers.get("user-agent"),
            state={"socket": socket},
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        await socket_auth.sign_in(context, settings=self.settings, hub=self.hub)
        return UNSET
