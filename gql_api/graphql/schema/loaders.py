"""Per-request DataLoaders (aiodataloader). Each batch takes its own connection, so two
loaders never share one, and returns results in key order.

They read plain rows (attribute access by column name, which the GraphQL types' fields read),
not ORM instances: building ORM objects was a fifth of a page's CPU. The statements
live in the repositories (``profiles.by_user_ids``, ``sessions.active_by_user_ids``): built
once, they take the keys as one array, and each batch is one autocommit statement.

The planned executor also asks for a level's profiles and sessions already written as JSON
text (``profiles_json``, ``sessions_json``; gql_api.repositories.json_text) when its selection
reads only columns: the same rows, one statement, nothing decoded.

All are staleness-tolerant reads (``db.stale_reads()``): on a read replica when one serves,
except after the viewer's own writes (gql_api.db.database), so they follow the reads above them.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import orjson
from aiodataloader import DataLoader

from gql_api.db import Database
from gql_api.observability import tracing
from gql_api.repositories import profiles as profile_repo
from gql_api.repositories import sessions as session_repo
from gql_api.repositories.json_text import JsonField

_NO_ITEMS = orjson.Fragment(b"[]")


class Loaders:
    """All loaders of one request, created lazily."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def profiles(
        self, user_ids: Sequence[uuid.UUID], columns: frozenset[str] | None = None
    ) -> list[Any]:
        """Per user id, its profile row or None: one statement. ``columns``: the ones the
        rows must hold besides ``user_id`` (all for None)."""
        with tracing.span("dataloader User.profile", _batch("User.profile", user_ids)):
            rows = await profile_repo.by_user_ids(
                self.db.stale_reads(), user_ids=list(user_ids), columns=columns
            )
        by_user = {row.user_id: row for row in rows}
        return [by_user.get(key) for key in user_ids]

    async def sessions(
        self, user_ids: Sequence[uuid.UUID], columns: frozenset[str] | None = None
    ) -> list[list[Any]]:
        """Per user id, its active session rows, newest first: one statement. ``columns``: the
        ones the rows must hold besides ``user_id`` (all for None)."""
        with tracing.span("dataloader User.sessions", _batch("User.sessions", user_ids)):
            rows = await session_repo.active_by_user_ids(
                self.db.stale_reads(), user_ids=list(user_ids), columns=columns
            )
        by_user: dict[uuid.UUID, list[Any]] = defaultdict(list)
        for row in rows:
            by_user[row.user_id].append(row)
        return [by_user.get(key, []) for key in user_ids]

    async def profiles_json(
        self, user_ids: Sequence[uuid.UUID], fields: tuple[JsonField, ...]
    ) -> list[orjson.Fragment | None]:
        """Per user id, its profile as JSON text that ``fields`` describe (or None): one
        statement. The planned executor splices the text into the response unread."""
        with tracing.span("dataloader User.profile", _batch("User.profile", user_ids)):
            rows = await profile_repo.json_by_user_ids(
                self.db.stale_reads(), user_ids=list(user_ids), fields=fields
            )
        by_user = {row.user_id: orjson.Fragment(row.json) for row in rows}
        return [by_user.get(key) for key in user_ids]

    async def sessions_json(
        self, user_ids: Sequence[uuid.UUID], fields: tuple[JsonField, ...]
    ) -> list[orjson.Fragment]:
        """Per user id, the JSON text of its active sessions that ``fields`` describe, newest
        first: one statement (see :meth:`profiles_json`)."""
        with tracing.span("dataloader User.sessions", _batch("User.sessions", user_ids)):
            rows = await session_repo.active_json_by_user_ids(
                self.db.stale_reads(), user_ids=list(user_ids), fields=fields
            )
        by_user = {row.user_id: orjson.Fragment(row.json) for row in rows}
        return [by_user.get(key, _NO_ITEMS) for key in user_ids]

    # The generic executor resolves one user at a time; these gather its calls into one batch.
    # (The planned executor already holds a whole level of users and calls the functions above.)

    @cached_property
    def profile_by_user_id(self) -> DataLoader[uuid.UUID, Any]:
        return DataLoader(self.profiles)

    @cached_property
    def sessions_by_user_id(self) -> DataLoader[uuid.UUID, list[Any]]:
        return DataLoader(self.sessions)


def _batch(relation: str, keys: Sequence[Any]) -> dict[str, Any] | None:
    """A loader batch's span attributes (None, built for nothing, while tracing is off)."""
    if tracing.CURRENT.get() is None:
        return None
    return {"graphql.dataloader.relation": relation, "graphql.dataloader.batch_size": len(keys)}
