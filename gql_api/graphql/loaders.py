"""Per-request DataLoaders (aiodataloader). Each batch takes its own connection, so two
loaders never share one, and returns results in key order.

They read plain rows (attribute access by column name, as the GraphQL types' ``from_row``
expects), not ORM instances: building ORM objects was a fifth of a page's CPU. The statements
are built once and take the keys as one array (``= ANY($1::UUID[])``), so a batch of 1 and a
batch of 100 are the same prepared statement; each batch is one autocommit statement.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from aiodataloader import DataLoader
from sqlalchemy import ARRAY, Uuid, any_, bindparam, func, select

from gql_api.db import Database
from gql_api.models import UserProfile, UserSession, metadata

_profiles = metadata.tables[UserProfile.__tablename__]
_sessions = metadata.tables[UserSession.__tablename__]

_IDS = any_(bindparam("ids", type_=ARRAY(Uuid())))

PROFILES_BY_USER_IDS = select(*_profiles.c).where(_profiles.c.user_id == _IDS)
ACTIVE_SESSIONS_BY_USER_IDS = (
    select(*[c for c in _sessions.c if c.name not in ("token_hash", "previous_token_hash")])
    .where(
        _sessions.c.user_id == _IDS,
        _sessions.c.revoked_at.is_(None),
        _sessions.c.expires_at > func.now(),
    )
    .order_by(_sessions.c.created_at.desc())
)


class Loaders:
    """All loaders of one request, created lazily."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def _rows(self, statement: Any, keys: Sequence[uuid.UUID]) -> Sequence[Any]:
        return await self.db.fetch(statement, {"ids": list(keys)})

    async def profiles(self, user_ids: Sequence[uuid.UUID]) -> list[Any]:
        """Per user id, its profile row or None: one statement."""
        rows = await self._rows(PROFILES_BY_USER_IDS, user_ids)
        by_user = {row.user_id: row for row in rows}
        return [by_user.get(key) for key in user_ids]

    async def sessions(self, user_ids: Sequence[uuid.UUID]) -> list[list[Any]]:
        """Per user id, its active session rows, newest first: one statement."""
        rows = await self._rows(ACTIVE_SESSIONS_BY_USER_IDS, user_ids)
        by_user: dict[uuid.UUID, list[Any]] = defaultdict(list)
        for row in rows:
            by_user[row.user_id].append(row)
        return [by_user.get(key, []) for key in user_ids]

    # The generic executor resolves one user at a time; these gather its calls into one batch.
    # (The planned executor already holds a whole level of users and calls the functions above.)

    @cached_property
    def profile_by_user_id(self) -> DataLoader[uuid.UUID, Any]:
        return DataLoader(self.profiles)

    @cached_property
    def sessions_by_user_id(self) -> DataLoader[uuid.UUID, list[Any]]:
        return DataLoader(self.sessions)
