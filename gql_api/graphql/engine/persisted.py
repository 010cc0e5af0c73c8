"""Persisted queries: Apollo's automatic persisted queries (APQ) and trusted documents.

APQ: a client sends ``extensions.persistedQuery.sha256Hash``; without the query text, the
document is looked up (PERSISTED_QUERY_NOT_FOUND when unknown, and the client retries with the
text); with the text, the hash must match it. Documents live in PostgreSQL, so every replica
knows them, with an in-process LRU in front bounded by entries and bytes (a hash always names
the same document, so the cache never goes stale; only the ``trusted`` flag can change, from
false to true).

Anyone may store a document, so the store is bounded: a document is kept without its comments
and ignored characters (graphql-core's ``strip_ignored_characters``: the hash is checked
against the text as sent, and then names the stripped text, which means the same), at most
``graphql.persisted_query_max_bytes`` of it (PERSISTED_QUERY_TOO_LARGE beyond); the automatic
entries together stay within the store's budget, least recently used evicted first when a store
pushes them over, and those unused for ``persisted_query_idle_ttl`` go at the periodic cleanup
(gql_api.ops.maintenance). A use is recorded at most once per :attr:`touch_interval` per entry and
process, never as a write on every request.

Trusted documents: when enabled, only registered documents run; admins may still send ad-hoc
queries (GraphiQL, operations). They are never evicted.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError, strip_ignored_characters

from gql_api.config import GraphQLSettings
from gql_api.db import Database
from gql_api.graphql.engine.caches import BytesBoundedLRU
from gql_api.graphql.engine.masking import database_failure
from gql_api.repositories import persisted_queries
from gql_api.repositories.persisted_queries import Budget

log = logging.getLogger(__name__)


def sha256_hex(query: str) -> str:
    return hashlib.sha256(query.encode("utf-8")).hexdigest()


def document_error(message: str, code: str, **extensions: Any) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code, **extensions})


TRUSTED_ONLY = "Only registered operations may run on this server"
# The longest a hot entry's recorded use may lag behind (a quarter of the idle TTL when shorter).
TOUCH_INTERVAL_S = 3600.0


def stripped(query: str) -> str | None:
    """The document without comments and insignificant whitespace; None when it does not
    even tokenise (execution then reports the syntax error, and nothing is stored)."""
    try:
        return strip_ignored_characters(query)
    except GraphQLSyntaxError:
        return None


@dataclass(frozen=True)
class Resolved:
    query: str | None
    sha256: str | None
    store: bool  # the text arrived with its hash and is not stored yet
    error: GraphQLError | None = None


def _refused(message: str, code: str, **extensions: Any) -> Resolved:
    return Resolved(None, None, False, document_error(message, code, **extensions))


@dataclass
class _Known:
    query: str
    trusted: bool
    used_at: float  # wall-clock time of the last use known to be recorded in PostgreSQL


class PersistedDocuments:
    def __init__(self, settings: GraphQLSettings) -> None:
        self.settings = settings
        self.budget = Budget(
            max_bytes=settings.persisted_query_store_max_bytes,
            max_entries=settings.persisted_query_store_max_entries,
        )
        self.touch_interval = min(
            TOUCH_INTERVAL_S, settings.persisted_query_idle_ttl.total_seconds() / 4
        )
        cache_bytes = settings.persisted_query_cache_bytes
        self._cache: BytesBoundedLRU[str, _Known] = BytesBoundedLRU(
            max_bytes=cache_bytes, max_entry_bytes=cache_bytes
        )
        # Each entry is charged at least an equal share of the bytes, which bounds the entries too.
        self._min_charge = cache_bytes // max(settings.persisted_query_cache_size, 1)

    def _remember(self, sha256: str, known: _Known) -> None:
        if self.settings.persisted_query_cache_size <= 0:
            return
        size = len(known.query.encode("utf-8")) + len(sha256)
        self._cache.put(sha256, known, max(size, self._min_charge))

    async def _record_use(self, db: Database, sha256: str, known: _Known) -> None:
        """Refresh the entry's ``last_used_at`` when the known one is a touch interval old; an
        entry evicted meanwhile is stored again (within the budget), since it is in use."""
        now = time.time()
        if known.trusted or now - known.used_at < self.touch_interval:
            return
        known.used_at = now
        try:
            async with db.transaction() as session:
                found = await persisted_queries.touch(
                    session, sha256=sha256, older_than_s=self.touch_interval
                )
            if not found:
                await self._store(db, sha256, known.query)
        except Exception as exc:
            _skipped("recording a use", exc)

    async def _lookup(self, db: Database, sha256: str, *, need_trusted: bool) -> _Known | None:
        cached = self._cache.get(sha256)
        if cached is not None and (cached.trusted or not need_trusted):
            await self._record_use(db, sha256, cached)
            return cached
        async with db.session() as session:
            row = await persisted_queries.get(session, sha256=sha256)
        if row is None:
            return None
        used_at = row.last_used_at or datetime.now(UTC)
        known = _Known(row.query, row.trusted, used_at.timestamp())
        self._remember(sha256, known)
        await self._record_use(db, sha256, known)
        return known

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
                if found is None or not found.trusted:
                    return _refused(TRUSTED_ONLY, "PERSISTED_QUERY_REQUIRED")
                return Resolved(query, sha256, False)
            cached = self._cache.get(sha256)
            if cached is not None:
                await self._record_use(db, sha256, cached)
                return Resolved(query, sha256, False)
            document = stripped(query)
            if document is None:  # not a document: execution says why; nothing to store
                return Resolved(query, sha256, False)
            limit = self.settings.persisted_query_max_bytes
            if len(document.encode("utf-8")) > limit:
                return _refused(
                    f"A persisted query may hold at most {limit} bytes "
                    "(without comments and whitespace); send it without persistedQuery",
                    "PERSISTED_QUERY_TOO_LARGE",
                    maxBytes=limit,
                )
            return Resolved(query, sha256, store=True)
        found = await self._lookup(db, sha256, need_trusted=trusted_only)
        if found is None or (trusted_only and not found.trusted):
            return _refused("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")
        return Resolved(found.query, sha256, False)

    async def store(self, db: Database, sha256: str, query: str) -> None:
        """Keep a document that arrived with its hash (and parsed and validated), stripped."""
        document = stripped(query)
        if document is None:
            return
        try:
            await self._store(db, sha256, document)
        except Exception as exc:
            _skipped("storing", exc)

    async def _store(self, db: Database, sha256: str, document: str) -> None:
        async with db.transaction() as session:
            trusted = await persisted_queries.store_automatic(
                session,
                sha256=sha256,
                query=document,
                budget=self.budget,
                touch_after_s=self.touch_interval,
            )
        if trusted is not None:
            self._remember(sha256, _Known(document, trusted, time.time()))


def _skipped(what: str, exc: Exception) -> None:
    """Storing and recording uses are best effort: with the database in trouble, the request
    that carried the document still gets its answer (the client resends the text on a miss)."""
    if database_failure(exc) is None:
        raise exc
    log.warning("persisted query: %s skipped: %s", what, exc.__class__.__name__)
