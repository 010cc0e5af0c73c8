"""User profiles: read one for update, write the fields a caller changed, read a batch.

Functions taking an ``AsyncSession`` work inside the caller's transaction and never commit.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gql_api.models import UserProfile, public_columns_among
from gql_api.repositories.json_text import JsonField, json_object
from gql_api.repositories.row_source import RowSource, any_of_ids

# The columns a client may write (through updateMe or an admin's createUser).
EDITABLE = ("bio", "avatar_url", "phone", "timezone", "locale", "preferences")


async def get_for_update(session: AsyncSession, *, user_id: uuid.UUID) -> UserProfile | None:
    """The profile, locked so that two concurrent edits diff against what the other wrote."""
    statement = (
        select(UserProfile)
        .where(UserProfile.user_id == user_id)  # type: ignore[arg-type]
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def upsert(
    session: AsyncSession, *, user_id: uuid.UUID, values: dict[str, Any]
) -> UserProfile:
    """Write ``values`` (a subset of :data:`EDITABLE`); creates the row for a user without one
    (users inserted before profiles existed, or by hand)."""
    unknown = set(values) - set(EDITABLE)
    if unknown:
        raise ValueError(f"not editable profile fields: {sorted(unknown)}")
    statement = (
        insert(UserProfile)
        .values(user_id=user_id, **values)
        .on_conflict_do_update(
            index_elements=[UserProfile.user_id],  # type: ignore[list-item]
            set_={**values, "updated_at": func.now()},
        )
        .returning(UserProfile)
    )
    return (
        await session.execute(statement, execution_options={"populate_existing": True})
    ).scalar_one()


async def by_user_ids(
    db: RowSource, *, user_ids: list[uuid.UUID], columns: frozenset[str] | None = None
) -> list[Any]:
    """The profiles of these users (in no particular order): one statement. ``columns``: the
    public columns to read besides ``user_id`` (all for None)."""
    return await db.fetch(_by_user_ids(columns), {"ids": user_ids})


async def json_by_user_ids(
    db: RowSource, *, user_ids: list[uuid.UUID], fields: tuple[JsonField, ...]
) -> list[Any]:
    """Per user with a profile, ``(user_id, json)``: the text of its profile as ``fields`` show
    it (``gql_api.repositories.json_text``)."""
    return await db.fetch(_json_by_user_ids(fields), {"ids": user_ids})


# One statement per column set (or JSON selection) a compiled selection reads (few: they come
# from documents' selections of Profile); built once each, so its SQL and cache key are made
# once.
@functools.lru_cache(maxsize=64)
def _by_user_ids(columns: frozenset[str] | None) -> Any:
    return select(*public_columns_among(UserProfile, columns, keys=("user_id",))).where(
        UserProfile.user_id == any_of_ids()  # type: ignore[arg-type]
    )


@functools.lru_cache(maxsize=64)
def _json_by_user_ids(fields: tuple[JsonField, ...]) -> Any:
    table = UserProfile.__table__  # type: ignore[attr-defined]
    return select(table.c.user_id, json_object(table, fields).label("json")).where(
        table.c.user_id == any_of_ids()
    )
