"""Where ``/metrics`` is served, and to whom.

The exposition shows pool limits, failed logins, active sessions and operation names: meant for
the operator's Prometheus, not for anyone who can reach the public port. So:

* ``server.metrics_token`` set: every ``/metrics`` (public port and listener) needs
  ``Authorization: Bearer <token>``, else 401;
* else ``server.metrics_port`` set: only a listener of its own on ``server.metrics_host``
  (127.0.0.1 by default) serves it; the public port answers 404, as for any unknown path;
* else production: the public port answers 404;
* else (development, test): public, as it always was.

The listener runs inside ``gql-api serve``, in a thread with its own event loop, uvicorn server
and one-connection pool (for the active-session count). ``serve`` sets up prometheus-client's
multi-process directory whenever a listener is configured, so the listener reports every
worker, with one worker or many.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gql_api.config import Settings
from gql_api.db import Database
from gql_api.observability import metrics

LISTENER_START_TIMEOUT_S = 15.0


class ListenerError(Exception):
    """The metrics listener could not start (e.g. its port is taken)."""


def _token_refusal(settings: Settings, authorization: str | None) -> Response | None:
    expected = settings.server.metrics_token
    if expected is None:
        return None
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode(), expected.encode()
    ):
        return None
    return JSONResponse(
        {"detail": "Unauthorized"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
    )


def public_refusal(settings: Settings, authorization: str | None) -> Response | None:
    """None when the public port may answer this ``/metrics`` request, else the answer to give."""
    if settings.server.metrics_token is not None:
        return _token_refusal(settings, authorization)
    if settings.server.metrics_port is not None or settings.is_production:
        return JSONResponse({"detail": "Not Found"}, status_code=404)
    return None


def listener_app(settings: Settings, database_url: str) -> Starlette:
    """``/metrics`` alone, with a pool of its own (the app's pools live in the workers)."""
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        one = settings.database.model_copy(update={"max_open_conns": 1, "max_idle_conns": 1})
        state["db"] = Database(one, database_url, None)
        try:
            yield
        finally:
            await state["db"].dispose()

    async def scrape(request: Request) -> Response:
        refusal = _token_refusal(settings, request.headers.get("authorization"))
        if refusal is not None:
            return refusal
        return Response(await metrics.render(state["db"]), media_type=metrics.CONTENT_TYPE)

    return Starlette(routes=[Route("/metrics", scrape)], lifespan=lifespan)


class MetricsListener:
    """The listener's uvicorn server in a daemon thread; :meth:`start` returns once it listens."""

    def __init__(self, settings: Settings, database_url: str) -> None:
        port = settings.server.metrics_port
        assert port is not None, "MetricsListener needs server.metrics_port"
        self.address = f"{settings.server.metrics_host}:{port}"
        config = uvicorn.Config(
            listener_app(settings, database_url),
            host=settings.server.metrics_host,
            port=port,
            lifespan="on",
            log_config=None,
            log_level=settings.logging.level,
            access_log=False,
            proxy_headers=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="metrics-listener", daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + LISTENER_START_TIMEOUT_S
        while not self.server.started:  # set by uvicorn once the socket listens
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ListenerError(f"cannot serve metrics on {self.address} (see the log)")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout=10)


__all__ = ["ListenerError", "MetricsListener", "listener_app", "public_refusal"]
