"""Telling listeners which users' sign-in state every transaction of this process changed.

Migration 0015's triggers notify every process of such changes at commit, and also keep the
changed users' ids in a transaction-local setting. Just before a session commits, that setting
is read (one round trip, for transactions that commit only), so the process's own listeners
learn the ids with the commit itself, not a notification's flight later: just before the
commit and again just after it (a reader that began in between may have read the state from
before). A transaction committed on a bare connection (``engine.begin()``: tests, migrations)
is not read: it counts as changing everyone.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, sessionmaker

CHANGED_SETTING = "gql_api.auth_changed"  # alembic/versions/0015_auth_notifications.py
_READ_CHANGED = text(f"SELECT current_setting('{CHANGED_SETTING}', true)")
_KEY = "gql_api_auth_changed"  # in the session's and the connection's info

# The users a commit changed; None: possibly anyone.
Changed = frozenset[uuid.UUID] | None
CommitListener = Callable[[Changed], None]


def changed_users(setting: str | None) -> Changed:
    """The setting's value as users: ids separated by spaces, or ``*`` for anyone."""
    if not setting:
        return frozenset()
    if setting.strip() == "*":
        return None
    try:
        return frozenset(uuid.UUID(part) for part in setting.split())
    except ValueError:
        return None


def announcing_sessionmaker(
    engine: AsyncEngine, listeners: list[CommitListener]
) -> async_sessionmaker[AsyncSession]:
    """Sessions on ``engine``; each of ``listeners`` (as the list holds them then) hears what
    every transaction committed on the engine changed."""

    def tell(changed: Changed) -> None:
        if changed is None or changed:
            for listener in listeners:
                listener(changed)

    def before_session_commit(session: Session) -> None:
        if not session.in_transaction():
            return
        connection = session.connection()
        changed = changed_users(connection.execute(_READ_CHANGED).scalar())
        session.info[_KEY] = connection.info[_KEY] = changed

    def connection_commit(connection: Any) -> None:
        tell(connection.info.pop(_KEY, None))  # not read (a bare connection): anyone

    def after_session_commit(session: Session) -> None:
        if _KEY in session.info:
            tell(session.info.pop(_KEY))

    event.listen(engine.sync_engine, "commit", connection_commit)
    sync_sessions = sessionmaker()
    event.listen(sync_sessions, "before_commit", before_session_commit)
    event.listen(sync_sessions, "after_commit", after_session_commit)
    return async_sessionmaker(
        engine,
        class_=AsyncSession,
        sync_session_class=sync_sessions,
        expire_on_commit=False,
        autoflush=False,
    )
