"""Persisted queries: Apollo's automatic persisted queries (APQ) and trusted documents.

APQ: a client sends ``extensions.persistedQuery.sha256Hash``; without the query text, the
document is looked up (PERSISTED_QUERY_NOT_FOUND when unknown, and the client retries with the
text); with the text, the hash must match it. Documents live in PostgreSQL, so every replica
knows them, with a bounded in-process LRU in front (a hash always names the same text, so the
cache never goes stale; only the ``trusted`` flag can change, from false to true).

Trusted documents: when enabled, only registered documents run; admins may still send ad-hoc
queries (GraphiQL, operations).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from graphql import GraphQLError

from gql_api.config import GraphQLSettings
from gql_api.db import Database
from gql_api.repositories import persisted_queries


def sha256_hex(query: str) -> str:
    return hashlib.sha256(query.encode("utf-8")).hexdigest()


def document_error(message: str, code: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


TRUSTED_ONLY = "Only registered operations may run on this server"


@dataclass(frozen=True)
class Resolved:
    query: str | None
    sha256: str | None
    store: bool  # the text arrived with its hash and is not stored yet
    error: GraphQLError | None = None


def _refused(message: str, code: str) -> Resolved:
    return Resolved(None, None, False, document_error(message, code))


class PersistedDocuments:
    def __init__(self, settings: GraphQLSettings) -> None:
        self.settings = settings
        self._cache: OrderedDict[str, tuple[str, bool]] = OrderedDict()

    def _remember(self, sha256: str, query: str, trusted: bool) -> None:
        if self.settings.persisted_query_cache_size <= 0:
            return
        self._cache[sha256] = (query, trusted)
        self._cache.move_to_end(sha256)
        while len(self._cache) > self.settings.persisted_query_cache_size:
            self._cache.popitem(last=False)

    async def _lookup(
        self, db: Database, sha256: str, *, need_trusted: bool
    ) -> tuple[str, bool] | None:
        cached = self._cache.get(sha256)
        if cached is not None and (cached[1] or not need_trusted):
            self._cache.move_to_end(sha256)
            return cached
        async with db.session() as session:
            row = await persisted_queries.get(session, sha256=sha256)
        if row is None:
            return None
        self._remember(sha256, row.query, row.trusted)
        return row.query, row.trusted

    async def resolve(
        self, db: Database, query: str | None, extensions: dict[str, Any] | None, *, is_admin: bool
    ) -> Resolved:
        persisted = (extensions or {}).get("persistedQuery")
        trusted_only = self.settings.trusted_documents_only and not is_admin
        if persisted is None:
            if trusted_only:
                return _refused(TRUSTED_ONLY, "PERSISTED_QUERY_REQUIRED")
            return Resolved(query, None, False)
        if not isinstance(persisted, dict) or not isinstance(persisted.get("sha256Hash"), str):
            return _refused("extensions.persistedQuery.sha256Hash must be a string", "BAD_REQUEST")
        if persisted.get("version", 1) != 1:
            return _refused("Unsupported persisted query version", "PERSISTED_QUERY_NOT_SUPPORTED")
        if not self.settings.persisted_queries and not self.settings.trusted_documents_only:
            return _refused("PersistedQueryNotSupported", "PERSISTED_QUERY_NOT_SUPPORTED")
        sha256 = persisted["sha256Hash"].lower()
        if query is not None:
            if sha256_hex(query) != sha256:
                return _refused(
                    "provided sha does not match query", "PERSISTED_QUERY_HASH_MISMATCH"
                )
            if trusted_only:
                found = await self._lookup(db, sha256, need_trusted=True)
                if found is None or not found[1]:
                    return _refused(TRUSTED_ONLY, "PERSISTED_QUERY_REQUIRED")
                return Resolved(query, sha256, False)
            known = sha256 in self._cache
            return Resolved(query, sha256, store=not known)
        found = await self._lookup(db, sha256, need_trusted=trusted_only)
        if found is None or (trusted_only and not found[1]):
            return _refused("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")
        return Resolved(found[0], sha256, False)

    async def store(self, db: Database, sha256: str, query: str) -> None:
        async with db.transaction() as session:
            await persisted_queries.save(session, sha256=sha256, query=query)
        self._remember(sha256, query, False)
