"""Automatic persisted queries cannot grow without bound: one document is capped in bytes and
kept without comments or whitespace, the automatic entries stay within the store's budget
(least recently used evicted first), idle ones go at the cleanup, trusted documents stay, and
the in-process cache is bounded by bytes. An evicted hash is a plain miss: the client sends
the text again and carries on (Apollo's flow)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from gql_api.cli import main
from gql_api.db import Database
from gql_api.graphql.engine.persisted import sha256_hex
from gql_api.ops.maintenance import cleanup_expired
from tests.conftest import make_settings
from tests.hardening_support import app_client

TYPENAME = {"data": {"__typename": "Query"}}


def apq(query: str | None = None, *, sha: str | None = None) -> dict[str, Any]:
    sha = sha or sha256_hex(query or "")
    body: dict[str, Any] = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha}}}
    if query is not None:
        body["query"] = query
    return body


def document(name: str, padding: int = 0) -> str:
    """A distinct valid document (by operation name), ``padding`` characters longer by a
    longer name."""
    return f"query {name}{'x' * padding} {{ __typename }}"


async def rows(db: Database) -> dict[str, tuple[str, bool]]:
    async with db.engine.connect() as conn:
        result = await conn.execute(text("SELECT sha256, query, trusted FROM persisted_queries"))
        return {sha: (query, trusted) for sha, query, trusted in result}


async def totals(db: Database) -> tuple[int, int]:
    """Entries and bytes of the automatic (untrusted) entries."""
    async with db.engine.connect() as conn:
        count, size = (
            await conn.execute(
                text(
                    "SELECT count(*), coalesce(sum(octet_length(query)), 0) "
                    "FROM persisted_queries WHERE NOT trusted"
                )
            )
        ).one()
    return int(count), int(size)


async def age(db: Database, interval: str, where: str = "true") -> None:
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE persisted_queries SET last_used_at = now() - CAST(:i AS text)::interval "
                f"WHERE {where}"
            ),
            {"i": interval},
        )


async def register_trusted(db: Database, folder: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Register one trusted document with ``gql-api documents register``; its hash."""
    query = "query Registered { health { status } }"
    folder.mkdir()
    (folder / "registered.graphql").write_text(query, encoding="utf-8")
    monkeypatch.setenv("USER_SERVICE_DATABASE_URL", db.url)
    assert await asyncio.to_thread(main, ["documents", "register", str(folder)]) == 0
    return sha256_hex(query)


# --- one document ----------------------------------------------------------------------------


async def test_an_oversized_document_is_refused_and_not_stored(
    client: httpx.AsyncClient, db: Database
) -> None:
    big = document("Big", padding=40 * 1024)  # the name alone is over the default 32 KiB
    response = await client.post("/graphql", json=apq(big))
    assert response.status_code == 200
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "PERSISTED_QUERY_TOO_LARGE", "maxBytes": 32 * 1024}
    assert "data" not in response.json() or response.json()["data"] is None
    assert await rows(db) == {}
    # The same document without persistedQuery simply runs.
    assert (await client.post("/graphql", json={"query": big})).json() == TYPENAME


async def test_comment_padding_is_not_stored(client: httpx.AsyncClient, db: Database) -> None:
    """The issue's attack: anonymous documents padded with big comments. Each is kept as the
    bare document; the hash still names it."""
    hashes = []
    for i in range(20):
        padded = "{ __typename }\n# " + f"{i}" + "x" * 90_000  # under the length limit
        hashes.append(sha256_hex(padded))
        assert (await client.post("/graphql", json=apq(padded))).json() == TYPENAME
    stored = await rows(db)
    assert set(stored) == set(hashes)
    assert {query for query, _trusted in stored.values()} == {"{__typename}"}
    assert await totals(db) == (20, 20 * len("{__typename}"))
    async with app_client(db) as replica:  # another replica: read from PostgreSQL
        assert (await replica.post("/graphql", json=apq(sha=hashes[0]))).json() == TYPENAME


# --- the store's budget ----------------------------------------------------------------------

BUDGET = {"persisted_query_store_max_bytes": 2048, "persisted_query_store_max_entries": 5}


async def test_the_store_never_exceeds_its_budget(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trusted = await register_trusted(db, tmp_path / "ops", monkeypatch)
    documents = [document(f"Q{i}", padding=300) for i in range(40)]  # about 330 bytes each
    async with app_client(db, graphql=BUDGET) as http:
        for query in documents[:30]:
            assert (await http.post("/graphql", json=apq(query))).json() == TYPENAME
            count, size = await totals(db)
            assert count <= 5 and size <= 2048, (count, size)
        # The most recently stored are the ones kept (eviction goes down to nine tenths).
        kept = set(await rows(db)) - {trusted}
        newest = [sha256_hex(q) for q in documents[25:30]]
        assert set(newest[1:]) <= kept <= set(newest)
        # Concurrent stores take turns (or skip, storing being best effort): still within.
        answers = await asyncio.gather(
            *(http.post("/graphql", json=apq(query)) for query in documents[30:])
        )
        assert all(a.json() == TYPENAME for a in answers)
    count, size = await totals(db)
    assert 0 < count <= 5 and size <= 2048, (count, size)
    assert (await rows(db))[trusted][1] is True  # trusted: never evicted, not counted


async def test_a_use_protects_an_entry_from_eviction(db: Database) -> None:
    """Least recently *used*, not least recently stored: a hash looked up by a replica after
    its recorded use went stale counts as used again."""
    documents = [document(f"U{i}", padding=300) for i in range(6)]
    async with app_client(db, graphql=BUDGET) as http:
        for query in documents[:5]:
            assert (await http.post("/graphql", json=apq(query))).json() == TYPENAME
        for position, query in enumerate(documents[:5]):  # used hours ago, oldest first
            await age(db, f"{5 - position} hours", where=f"sha256 = '{sha256_hex(query)}'")
        async with app_client(db, graphql=BUDGET) as replica:  # no cache: looks it up
            first = sha256_hex(documents[0])
            assert (await replica.post("/graphql", json=apq(sha=first))).json() == TYPENAME
        assert (await http.post("/graphql", json=apq(documents[5]))).json() == TYPENAME
    # Over by one: down to nine tenths (4), the least recently used going first; the first
    # document, used again, stays.
    assert set(await rows(db)) == {sha256_hex(documents[i]) for i in (5, 0, 4, 3)}


async def test_a_fresh_use_is_not_written_again(db: Database) -> None:
    """Hot lookups do not write: a use recorded within the touch interval stays as it is."""
    query = document("Hot")
    async with app_client(db) as http:
        assert (await http.post("/graphql", json=apq(query))).json() == TYPENAME
    await age(db, "10 minutes")
    async with db.engine.connect() as conn:
        before = (await conn.execute(text("SELECT last_used_at FROM persisted_queries"))).one()
    async with app_client(db) as replica:
        for _ in range(5):
            assert (await replica.post("/graphql", json=apq(sha=sha256_hex(query)))).json()
    async with db.engine.connect() as conn:
        after = (await conn.execute(text("SELECT last_used_at FROM persisted_queries"))).one()
    assert after == before


# --- the periodic cleanup --------------------------------------------------------------------


async def test_cleanup_removes_idle_oversized_and_over_budget_entries_but_not_trusted(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trusted = await register_trusted(db, tmp_path / "ops", monkeypatch)
    documents = [document(f"C{i}") for i in range(8)]
    async with app_client(db) as http:
        for query in documents:
            assert (await http.post("/graphql", json=apq(query))).json() == TYPENAME
    async with db.engine.begin() as conn:  # stored before the size limit existed
        await conn.execute(
            text("INSERT INTO persisted_queries (sha256, query) VALUES (:sha, :q)"),
            {"sha": "f" * 64, "q": "{ __typename }" + " " * 100_000},
        )
    await age(db, "30 days", where="true")  # trusted ones too: they stay anyway
    fresh = [sha256_hex(q) for q in documents[:4]]
    for position, sha in enumerate(fresh):  # used recently, oldest first
        await age(db, f"{10 - position} minutes", where=f"sha256 = '{sha}'")

    settings = make_settings(db.url, graphql={"persisted_query_store_max_entries": 3})
    removed = await cleanup_expired(db, settings, batch=2)
    # 4 idle, 1 oversized, then 4 fresh ones over a budget of 3: down to nine tenths (2).
    assert removed["persisted_queries"] == 4 + 1 + 2
    stored = await rows(db)
    assert set(stored) == {trusted, *fresh[2:]}
    assert stored[trusted][1] is True


async def test_cli_db_cleanup_reports_persisted_queries(
    db: Database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with app_client(db) as http:
        assert (await http.post("/graphql", json=apq(document("Old")))).json() == TYPENAME
    await age(db, "8 days")  # past the default idle TTL of 7 days
    monkeypatch.setenv("USER_SERVICE_DATABASE_URL", db.url)
    for name in ("USER_SERVICE_ENV", "USER_SERVICE_CONFIG", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert await asyncio.to_thread(main, ["db", "cleanup"]) == 0
    assert "persisted_queries: removed 1" in capsys.readouterr().out
    assert await rows(db) == {}


async def test_an_expired_hash_is_a_miss_and_the_retry_with_text_works(db: Database) -> None:
    query = document("Expiring")
    sha = sha256_hex(query)
    async with app_client(db) as http:
        assert (await http.post("/graphql", json=apq(query))).json() == TYPENAME
    await age(db, "8 days")
    assert (await cleanup_expired(db, make_settings(db.url)))["persisted_queries"] == 1
    async with app_client(db) as replica:
        miss = (await replica.post("/graphql", json=apq(sha=sha))).json()
        assert miss["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
        assert (await replica.post("/graphql", json=apq(query))).json() == TYPENAME
        assert (await replica.post("/graphql", json=apq(sha=sha))).json() == TYPENAME
    assert set(await rows(db)) == {sha}


# --- the in-process cache --------------------------------------------------------------------


async def test_the_in_process_cache_is_bounded_by_bytes(db: Database) -> None:
    """Four documents of ~1,500 bytes and a 4,096-byte cache: the two most recent stay cached
    (served even after the table is emptied), the others are gone from memory too."""
    documents = [document(f"M{i}", padding=1500) for i in range(4)]
    async with app_client(db, graphql={"persisted_query_cache_bytes": 4096}) as http:
        for query in documents:
            assert (await http.post("/graphql", json=apq(query))).json() == TYPENAME
        async with db.engine.begin() as conn:
            await conn.execute(text("DELETE FROM persisted_queries"))
        answers = [
            (await http.post("/graphql", json=apq(sha=sha256_hex(q)))).json() for q in documents
        ]
    codes = [a["errors"][0]["extensions"]["code"] if "errors" in a else "hit" for a in answers]
    assert codes == ["PERSISTED_QUERY_NOT_FOUND"] * 2 + ["hit"] * 2
