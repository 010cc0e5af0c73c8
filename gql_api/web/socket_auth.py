"""Who may hold a GraphQL WebSocket, and for how long (``graphql_ws``): ``connection_init``
carries ``{"authorization": "Bearer ..."}``, checked as an HTTP request's
(``auth.current.authenticate``), refused with 4401, or 4429 beyond
``realtime.max_sockets_per_user``; the session is checked again when the access token would
expire and at the session's own end (``SESSION_EXPIRED``, then 4401).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from strawberry.exceptions import ConnectionRejectionError

from gql_api.auth.current import authenticate, bearer_token
from gql_api.auth.tokens import InvalidToken, decode_access_token
from gql_api.config import Settings
from gql_api.errors import Unauthenticated
from gql_api.graphql.schema.context import Context
from gql_api.realtime.events import SESSION_EXPIRED, Event
from gql_api.realtime.hub import CLOSE_TOO_MANY, CLOSE_UNAUTHORIZED, Hub, Socket, TooManySockets
from gql_api.repositories import sessions as session_repo

# The WebSocket view's logger: its records keep the name they had before this module was split.
log = logging.getLogger("gql_api.web.graphql_ws")

_RECHECK_AFTER_ERROR_S = 5.0


async def sign_in(context: Context, *, settings: Settings, hub: Hub) -> None:
    """Authenticate the socket with its ``connection_init`` payload and watch its session, or
    close it and raise :class:`ConnectionRejectionError`: 4401 for a missing or bad token, 4429
    past the per-user limit, 1011 when the token cannot be checked now."""
    socket: Socket = context.state["socket"]
    params = getattr(context, "connection_params", None) or {}
    header = params.get("authorization") or params.get("Authorization")
    db = context.db
    auth = settings.auth
    try:
        token = bearer_token(header if isinstance(header, str) else None)
        if token is None:
            raise Unauthenticated('connection_init needs {"authorization": "Bearer ..."}')
        viewer = await authenticate(db, auth, token)
        claims = decode_access_token(auth, token)
    except (Unauthenticated, InvalidToken):
        await socket.close(CLOSE_UNAUTHORIZED, "Unauthorized")
        raise ConnectionRejectionError from None
    except Exception:
        log.warning("realtime: could not check a socket's token", exc_info=True)
        await socket.close(1011, "Try again later")
        raise ConnectionRejectionError from None
    user_id, session_id = viewer.user.id, viewer.session_id

    async def alive() -> bool:
        expiry = await session_repo.live_session_expiry(db, session_id=session_id, user_id=user_id)
        return expiry is not None

    try:
        hub.identify(
            socket,
            user_id=user_id,
            session_id=session_id,
            is_admin=viewer.is_admin,
            alive=alive,
        )
    except TooManySockets:
        await socket.close(CLOSE_TOO_MANY, "Too many sockets for this user")
        raise ConnectionRejectionError from None
    context.viewer = viewer  # the introspection policy and limits see the caller
    # First look again when the token or the session ends, whichever comes first.
    ends = await session_repo.live_session_expiry(db, session_id=session_id, user_id=user_id)
    check_at = claims.expires_at if ends is None else min(ends, claims.expires_at)
    socket.spawn(_watch_session(socket, db, check_at, ttl=auth.access_token_ttl))


async def _watch_session(socket: Socket, db: Any, check_at: datetime, *, ttl: timedelta) -> None:
    """Re-check the session when the token would expire, then at the session's end or every
    token lifetime, whichever comes first; tell and close when it is no longer live."""
    assert socket.user_id is not None and socket.session_id is not None
    while True:
        await asyncio.sleep(max((check_at - datetime.now(UTC)).total_seconds(), 0.0))
        try:
            expires = await session_repo.live_session_expiry(
                db, session_id=socket.session_id, user_id=socket.user_id
            )
        except Exception:  # the database is out of reach: keep the socket, look again soon
            log.warning("realtime: could not re-check a socket's session", exc_info=True)
            check_at = datetime.now(UTC) + timedelta(seconds=_RECHECK_AFTER_ERROR_S)
            continue
        now = datetime.now(UTC)
        if expires is None or expires <= now:
            socket.session_ended(
                Event(SESSION_EXPIRED, user_id=socket.user_id, session_id=socket.session_id)
            )
            return
        check_at = min(expires, now + ttl)
