"""The request id (``X-Request-ID``, or the trace id while tracing is on) and the access line."""

from __future__ import annotations

import logging
import random

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gql_api.observability import tracing
from gql_api.observability.access_line import write_access_line
from gql_api.observability.logs import bind_request, unbind_request

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_KEY = REQUEST_ID_HEADER.encode()
# Probes and scrapes are logged at DEBUG only: they would drown everything else.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class RequestIdMiddleware:
    """Takes ``X-Request-ID`` (or makes one), keeps it on the request and returns it; binds the
    request's log context and writes one access line when the request ends."""

    def __init__(self, app: ASGIApp, *, trace_ids: bool = False) -> None:
        self.app = app
        self.trace_ids = trace_ids

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope["headers"]:
            if name == _REQUEST_ID_KEY:
                incoming = value.decode("latin-1")
                break
        request_id = (
            incoming
            if incoming and len(incoming) <= 64 and incoming.isprintable()
            # 128 random bits: an id need not be secret, only unique (the random module is
            # seeded from the system per process and again after a fork); secrets.token_hex
            # made a getrandom() system call per request.
            else f"{random.getrandbits(128):032x}"
        )
        if self.trace_ids:  # tracing on: the trace's id, so that log lines and traces join
            request_id = tracing.current_trace_id() or request_id
        scope.setdefault("state", {})["request_id"] = request_id
        entry, token = bind_request(request_id)
        status = 500  # unless a response starts

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            path = scope.get("path", "")
            level = logging.DEBUG if path in QUIET_PATHS else logging.INFO
            write_access_line(level, scope.get("method", "-"), path, status, entry)
            unbind_request(token)
