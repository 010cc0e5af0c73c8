"""Telling listeners about every transaction committed through an engine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import sessionmaker


def announcing_sessionmaker(
    engine: AsyncEngine, listeners: list[Callable[[], None]]
) -> async_sessionmaker[AsyncSession]:
    """Sessions on ``engine``; each of ``listeners`` (as the list holds them then) is called
    when any transaction on the engine commits, session or connection: just before the commit
    and, for a session, again just after it (a reader that began in between may have read the
    state from before the commit)."""

    def committed(*_: Any) -> None:
        for listener in listeners:
            listener()

    event.listen(engine.sync_engine, "commit", committed)
    sync_sessions = sessionmaker()
    event.listen(sync_sessions, "after_commit", committed)
    return async_sessionmaker(
        engine,
        class_=AsyncSession,
        sync_session_class=sync_sessions,
        expire_on_commit=False,
        autoflush=False,
    )
