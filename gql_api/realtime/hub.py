"""One process's fan-out: the open sockets, who they belong to, and their subscriptions' queues.

The listener hands every event to :meth:`Hub.dispatch`, which only puts it on bounded queues and
never waits: a subscription whose queue is full (a client that reads slower than events come)
gets its socket closed with 4429 instead of growing the server's memory. Sockets are counted at
the handshake (``max_sockets``) and per user once authenticated (``max_sockets_per_user``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gql_api.config import RealtimeSettings

from .events import RESYNC, SESSION_EXPIRED, SESSION_REVOKED, USER_KINDS, Event

log = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_MANY = 4429
CLOSE_FORBIDDEN = 4403
VIEWER = "viewer"
USERS = "users"
# A user's own account events that end all of its sessions.
_ENDS_SESSIONS = frozenset({SESSION_REVOKED, "user.deactivated", "user.deleted"})


class TooManySockets(Exception):
    """The per-user cap is reached."""


Closer = Callable[[int, str], Awaitable[None]]
Alive = Callable[[], Awaitable[bool]]


class Stream:
    """One subscription's bounded queue of events."""

    def __init__(self, socket: Socket, kind: str, size: int) -> None:
        self.socket = socket
        self.kind = kind
        # None: the socket is closing, the subscription ends.
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(size)

    def put(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.socket.close_soon(CLOSE_TOO_MANY, "Too many pending events: read faster")

    async def events(self) -> AsyncIterator[Event]:
        while not self.socket.closing:
            event = await self.queue.get()
            if event is None:
                return
            yield event


class Socket:
    """One WebSocket connection as the hub sees it."""

    def __init__(self, hub: Hub, *, closer: Closer) -> None:
        self.hub = hub
        self._closer = closer
        self.user_id: uuid.UUID | None = None
        self.session_id: uuid.UUID | None = None
        self.is_admin = False
        self.alive: Alive | None = None  # is this socket's session still live (the database)
        self.streams: set[Stream] = set()
        self.closing = False
        self._tasks: set[asyncio.Task[Any]] = set()

    def has_viewer_stream(self) -> bool:
        return any(stream.kind == VIEWER for stream in self.streams)

    def deliver(self, event: Event) -> None:
        """An event about this socket's user (or RESYNC)."""
        for stream in list(self.streams):
            if stream.kind == VIEWER or event.kind == RESYNC:
                stream.put(event)
        watching = any(stream.kind == USERS for stream in self.streams)
        if watching and event.kind == "user.updated" and "role" in event.fields:
            # userChanges was granted to an admin: a changed role must authenticate again.
            self.close_soon(CLOSE_FORBIDDEN, "Role changed: connect again")
        if event.kind in _ENDS_SESSIONS and not self.has_viewer_stream():
            # No viewerEvents subscription to tell: the socket still must not outlive its
            # session.
            self.spawn(self._end_if_own(event))

    def session_ended(self, event: Event) -> None:
        """The session's end noticed here (expiry): told to viewerEvents, then 4401."""
        if self.has_viewer_stream():
            self.deliver(event)
        else:
            self.close_soon(CLOSE_UNAUTHORIZED, "Session expired")

    async def is_own(self, event: Event) -> bool:
        """Whether ``event`` ended (or, for SESSION_CREATED, is) this socket's session."""
        if event.kind == SESSION_EXPIRED:
            return event.session_id == self.session_id
        if event.kind not in _ENDS_SESSIONS and event.kind != "session.created":
            return False
        if event.session_id is not None:
            return event.session_id == self.session_id
        if event.except_session_id is not None and event.except_session_id == self.session_id:
            return False
        return self.alive is not None and not await self.alive()

    async def _end_if_own(self, event: Event) -> None:
        if await self.is_own(event):
            await self.close(CLOSE_UNAUTHORIZED, "Session revoked")

    def close_soon(self, code: int, reason: str) -> None:
        if not self.closing:
            self.spawn(self.close(code, reason))

    async def close(self, code: int, reason: str) -> None:
        if self.closing:
            return
        self.closing = True
        for stream in self.streams:
            # Wake the subscriptions' generators so that they end (a full queue's generator
            # ends when the closed socket's operations are cancelled).
            if not stream.queue.full():
                stream.queue.put_nowait(None)
        await self._closer(code, reason)

    def spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel_tasks(self) -> None:
        for task in list(self._tasks):
            task.cancel()


class Hub:
    def __init__(self, settings: RealtimeSettings) -> None:
        self.settings = settings
        self.sockets: set[Socket] = set()
        self.by_user: dict[uuid.UUID, set[Socket]] = {}
        self.watchers: set[Stream] = set()  # userChanges subscriptions (admins)
        self.delivered = 0

    def open(self, *, closer: Closer) -> Socket | None:
        """A new socket at the handshake, or None when ``max_sockets`` are open."""
        if len(self.sockets) >= self.settings.max_sockets:
            return None
        socket = Socket(self, closer=closer)
        self.sockets.add(socket)
        return socket

    def identify(
        self,
        socket: Socket,
        *,
        user_id: uuid.UUID,
        session_id: uuid.UUID,
        is_admin: bool,
        alive: Alive,
    ) -> None:
        mine = self.by_user.setdefault(user_id, set())
        if len(mine) >= self.settings.max_sockets_per_user:
            if not mine:
                del self.by_user[user_id]
            raise TooManySockets
        socket.user_id, socket.session_id, socket.is_admin = user_id, session_id, is_admin
        socket.alive = alive
        mine.add(socket)

    def release(self, socket: Socket) -> None:
        self.sockets.discard(socket)
        for stream in socket.streams:
            self.watchers.discard(stream)
        socket.streams.clear()
        socket.cancel_tasks()
        if socket.user_id is not None:
            mine = self.by_user.get(socket.user_id)
            if mine is not None:
                mine.discard(socket)
                if not mine:
                    del self.by_user[socket.user_id]

    def subscribe(self, socket: Socket, kind: str) -> Stream:
        stream = Stream(socket, kind, self.settings.queue_size)
        socket.streams.add(stream)
        if kind == USERS:
            self.watchers.add(stream)
        return stream

    def unsubscribe(self, stream: Stream) -> None:
        stream.socket.streams.discard(stream)
        self.watchers.discard(stream)

    def dispatch(self, event: Event) -> None:
        """Queue ``event`` for every subscription that may see it; never waits."""
        self.delivered += 1
        if event.kind == RESYNC:
            for socket in list(self.sockets):
                socket.deliver(event)
            return
        if event.user_id is not None:
            for socket in list(self.by_user.get(event.user_id, ())):
                socket.deliver(event)
        if event.kind in USER_KINDS:
            for stream in list(self.watchers):
                stream.put(event)

    def resync(self) -> None:
        """Events may have been missed (the listener reconnected): every subscription hears so."""
        self.dispatch(Event(RESYNC))
