"""Live sessions remembered between requests, forgotten the moment PostgreSQL says they changed.

Checking a bearer's session was a database round trip on every request: a quarter of a ``me``
request's CPU (bench/RESULTS.md). A session that passed the check is remembered here for at
most ``auth.session_cache_ttl`` and never past its own expiry, and forgotten:

- on every replica, when a trigger's notification says its user, one of the user's sessions
  or second factors changed (migration 0015; the notification is sent at commit, whatever made
  the change: this service, the CLI, psql), through the process's LISTEN connection
  (``gql_api.realtime.listener``);
- in this process, when a transaction of this process that changed them commits, just before
  and just after the commit (``gql_api.db.commits``), so that a logout or a revocation is seen
  by the next request on the same replica before its own notification has arrived;
- entirely, and nothing is remembered, while the LISTEN connection is down (notifications sent
  then are lost).

A check that read the database while a notification or a commit arrived is not remembered (it
may have read the state from before the change): each read takes a ticket, the current
generation, and only a ticket still current when the read returns may store its result.

What remains is the notification's flight time: a request on another replica in the
milliseconds between the commit of a revocation and the arrival of its notification still
passes. ``auth.session_cache_ttl = 0`` checks the database on every request instead.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from gql_api.db.commits import Changed, changed_users

if TYPE_CHECKING:
    from gql_api.config import Settings

    from .current import Viewer

# The notifications' channel (migration 0015).
CHANNEL = "gql_api_auth"
# Besides the row's values: the entry, the Viewer, the two index slots (measured with
# sys.getsizeof, rounded up).
ENTRY_OVERHEAD_BYTES = 400


@dataclass(slots=True)
class _Entry:
    viewer: Viewer
    user_id: uuid.UUID
    fresh_until: float  # time.monotonic()
    session_expires_at: float  # time.time(), as the session's expires_at
    size: int


class SessionCache:
    """Viewers of live sessions by session id, bounded in time and in bytes; a
    ``gql_api.realtime.Channel`` of the process's LISTEN connection."""

    name = CHANNEL

    def __init__(self, *, ttl_s: float, max_bytes: int) -> None:
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self._entries: OrderedDict[uuid.UUID, _Entry] = OrderedDict()  # oldest first
        self._by_user: dict[uuid.UUID, set[uuid.UUID]] = {}
        self._bytes = 0
        self._generation = 0
        self._watching = False  # the LISTEN connection is up: notifications arrive

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionCache | None:
        """The cache these settings ask for, or None. None also behind PgBouncer in transaction
        mode without ``realtime.listen_url``: a LISTEN made through it would seem to work while
        its notifications went nowhere."""
        auth = settings.auth
        ttl_s = auth.session_cache_ttl.total_seconds()
        if ttl_s <= 0 or auth.session_cache_bytes <= 0:
            return None
        if settings.database.disable_prepared_statements and not settings.realtime.listen_url:
            return None
        return cls(ttl_s=ttl_s, max_bytes=auth.session_cache_bytes)

    @property
    def kept_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def viewer(self, session_id: uuid.UUID, user_id: uuid.UUID) -> Viewer | None:
        """The remembered viewer of this session, if it is still to be trusted."""
        entry = self._entries.get(session_id)
        if entry is None:
            return None
        if (
            entry.user_id != user_id
            or entry.fresh_until <= time.monotonic()
            or entry.session_expires_at <= time.time()
        ):
            self._drop(session_id)
            return None
        return entry.viewer

    def ticket(self) -> int | None:
        """Taken before the database check: what :meth:`keep` needs to store its result
        (None: nothing may be stored now)."""
        return self._generation if self._watching else None

    def keep(self, ticket: int | None, viewer: Viewer, session_expires_at: datetime) -> None:
        """Remember a check's result, unless something changed since its ticket was taken."""
        if ticket is None or ticket != self._generation or not self._watching:
            return
        session_id = viewer.session_id
        self._drop(session_id)
        size = ENTRY_OVERHEAD_BYTES + sum(map(sys.getsizeof, viewer.user))
        if size > self.max_bytes:
            return
        while self._bytes + size > self.max_bytes:
            self._drop(next(iter(self._entries)))
        user_id = viewer.user.id
        self._entries[session_id] = _Entry(
            viewer=viewer,
            user_id=user_id,
            fresh_until=time.monotonic() + self.ttl_s,
            session_expires_at=session_expires_at.timestamp(),
            size=size,
        )
        self._by_user.setdefault(user_id, set()).add(session_id)
        self._bytes += size

    def notified(self, payload: str) -> None:
        """A notification on :data:`CHANNEL`: a user id, or ``*`` (read as the writing
        transaction reads its own: :func:`gql_api.db.commits.changed_users`; an empty or
        unreadable payload forgets everyone)."""
        self.forget(changed_users(payload) if payload else None)

    def forget(self, users: Changed) -> None:
        """Forget these users' checks (None: everyone's)."""
        if users is None:
            self.forget_all()
            return
        self._generation += 1
        for user_id in users:
            for session_id in self._by_user.get(user_id, set()).copy():
                self._drop(session_id)

    def forget_all(self) -> None:
        self._generation += 1
        self._entries.clear()
        self._by_user.clear()
        self._bytes = 0

    def listening(self) -> None:
        """The LISTEN connection is (again) up: from now on every change is notified."""
        self.forget_all()
        self._watching = True

    def lost(self) -> None:
        """The LISTEN connection is down: changes may go unnoticed, so nothing is trusted."""
        self._watching = False
        self.forget_all()

    def _drop(self, session_id: uuid.UUID) -> None:
        entry = self._entries.pop(session_id, None)
        if entry is None:
            return
        self._bytes -= entry.size
        sessions = self._by_user.get(entry.user_id)
        if sessions is not None:
            sessions.discard(session_id)
            if not sessions:
                del self._by_user[entry.user_id]
