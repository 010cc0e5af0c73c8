"""The Subscription type: ``viewerEvents`` (the caller's sessions and account) and
``userChanges`` (admins). Served only over the WebSocket (graphql/websocket.py), whose socket
the hub knows (``context.state["socket"]``); events come from gql_api.realtime."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from enum import Enum

import strawberry
from graphql import GraphQLError

from gql_api.errors import AppError, Forbidden, Unauthenticated
from gql_api.graphql.schema.context import Context
from gql_api.realtime import events as ev
from gql_api.realtime.hub import USERS, VIEWER, Socket

Info = strawberry.Info[Context, None]


@strawberry.enum
class ViewerEventKind(Enum):
    SESSION_CREATED = "SESSION_CREATED"
    SESSION_REVOKED = "SESSION_REVOKED"
    SESSION_EXPIRED = "SESSION_EXPIRED"
    PROFILE_CHANGED = "PROFILE_CHANGED"
    ROLE_CHANGED = "ROLE_CHANGED"
    # Events may have been missed (the server's LISTEN connection was lost): read again.
    RESYNC = "RESYNC"


@strawberry.type(description="Something happened to the signed-in user's sessions or account.")
class ViewerEvent:
    kind: ViewerEventKind
    session_id: strawberry.ID | None = strawberry.field(
        description="The session concerned; null when several ended at once."
    )
    own_session: bool = strawberry.field(
        description="Whether it is (or ended) this connection's own session; when it ended, "
        "the server closes the socket with 4401 after this event."
    )
    reason: str | None
    fields: list[str] = strawberry.field(description="Names of the changed fields, no values.")


@strawberry.enum
class UserChangeKind(Enum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    DEACTIVATED = "DEACTIVATED"
    DELETED = "DELETED"
    RESYNC = "RESYNC"


@strawberry.type(description="A user was created, changed, deactivated or deleted.")
class UserChange:
    kind: UserChangeKind
    user_id: strawberry.ID | None
    fields: list[str] = strawberry.field(description="Names of the changed fields, no values.")


_USER_KINDS = {
    ev.USER_CREATED: UserChangeKind.CREATED,
    ev.USER_UPDATED: UserChangeKind.UPDATED,
    ev.USER_DEACTIVATED: UserChangeKind.DEACTIVATED,
    ev.USER_DELETED: UserChangeKind.DELETED,
    ev.RESYNC: UserChangeKind.RESYNC,
}
_ENDING = {ev.SESSION_REVOKED, ev.USER_DEACTIVATED, ev.USER_DELETED}


def _refusal(error: AppError) -> GraphQLError:
    # Raised before the first event, so the client gets an ``error`` message with the code.
    return GraphQLError(error.message, extensions=error.extensions)


def _socket(info: Info) -> Socket:
    socket = info.context.state.get("socket")
    if not isinstance(socket, Socket) or socket.user_id is None:
        raise _refusal(Unauthenticated("Subscriptions need an authenticated WebSocket"))
    return socket


async def viewer_event(socket: Socket, event: ev.Event) -> ViewerEvent | None:
    """The event as the socket's viewer sees it; None for events it does not show."""
    session = strawberry.ID(str(event.session_id)) if event.session_id else None
    if event.kind == ev.RESYNC:
        return ViewerEvent(
            kind=ViewerEventKind.RESYNC, session_id=None, own_session=False, reason=None, fields=[]
        )
    if event.kind == ev.SESSION_CREATED:
        kind = ViewerEventKind.SESSION_CREATED
    elif event.kind == ev.SESSION_EXPIRED:
        kind = ViewerEventKind.SESSION_EXPIRED
    elif event.kind in _ENDING:
        kind = ViewerEventKind.SESSION_REVOKED
    elif event.kind == ev.USER_UPDATED:
        role = "role" in event.fields
        kind = ViewerEventKind.ROLE_CHANGED if role else ViewerEventKind.PROFILE_CHANGED
        return ViewerEvent(
            kind=kind, session_id=None, own_session=False, reason=None, fields=list(event.fields)
        )
    else:
        return None
    reason = event.reason
    if reason is None and event.kind in (ev.USER_DEACTIVATED, ev.USER_DELETED):
        reason = event.kind.removeprefix("user.")
    return ViewerEvent(
        kind=kind,
        session_id=session,
        own_session=await socket.is_own(event),
        reason=reason,
        fields=[],
    )


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="The signed-in user's session and account events, over the WebSocket."
    )
    async def viewer_events(self, info: Info) -> AsyncGenerator[ViewerEvent, None]:
        socket = _socket(info)
        stream = socket.hub.subscribe(socket, VIEWER)
        try:
            async for event in stream.events():
                item = await viewer_event(socket, event)
                if item is None:
                    continue
                yield item
                ended = item.kind in (
                    ViewerEventKind.SESSION_REVOKED,
                    ViewerEventKind.SESSION_EXPIRED,
                )
                if ended and item.own_session:
                    await socket.close(4401, "Session ended")
                    return
        finally:
            socket.hub.unsubscribe(stream)

    @strawberry.subscription(description="Users created, changed, deactivated, deleted (admins).")
    async def user_changes(self, info: Info) -> AsyncGenerator[UserChange, None]:
        socket = _socket(info)
        if not socket.is_admin:
            raise _refusal(Forbidden("Administrator role required"))
        stream = socket.hub.subscribe(socket, USERS)
        try:
            async for event in stream.events():
                yield UserChange(
                    kind=_USER_KINDS[event.kind],
                    user_id=strawberry.ID(str(event.user_id)) if event.user_id else None,
                    fields=list(event.fields),
                )
        finally:
            socket.hub.unsubscribe(stream)
