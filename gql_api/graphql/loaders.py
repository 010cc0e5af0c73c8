"""Per-request DataLoaders (aiodataloader). Each batch opens its own session, so one
AsyncSession never runs two queries at once, and returns results in key order."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from functools import cached_property

from aiodataloader import DataLoader
from sqlalchemy import func, select

from gql_api.db import Database
from gql_api.models import UserProfile, UserSession


class Loaders:
    """All loaders of one request, created lazily."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @cached_property
    def profile_by_user_id(self) -> DataLoader[uuid.UUID, UserProfile | None]:
        async def batch(keys: Sequence[uuid.UUID]) -> list[UserProfile | None]:
            async with self.db.session() as session:
                rows = (
                    (
                        await session.execute(
                            select(UserProfile).where(UserProfile.user_id.in_(keys))  # type: ignore[attr-defined]
                        )
                    )
                    .scalars()
                    .all()
                )
            by_user = {row.user_id: row for row in rows}
            return [by_user.get(key) for key in keys]

        return DataLoader(batch)

    @cached_property
    def sessions_by_user_id(self) -> DataLoader[uuid.UUID, list[UserSession]]:
        async def batch(keys: Sequence[uuid.UUID]) -> list[list[UserSession]]:
            async with self.db.session() as session:
                rows = (
                    (
                        await session.execute(
                            select(UserSession)
                            .where(
                                UserSession.user_id.in_(keys),  # type: ignore[attr-defined]
                                UserSession.revoked_at.is_(None),  # type: ignore[union-attr]
                                UserSession.expires_at > func.now(),  # type: ignore[arg-type]
                            )
                            .order_by(UserSession.created_at.desc())  # type: ignore[union-attr]
                        )
                    )
                    .scalars()
                    .all()
                )
            by_user: dict[uuid.UUID, list[UserSession]] = defaultdict(list)
            for row in rows:
                by_user[row.user_id].append(row)
            return [by_user.get(key, []) for key in keys]

        return DataLoader(batch)
