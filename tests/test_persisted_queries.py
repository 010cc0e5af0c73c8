"""Automatic persisted queries (register, hit, miss, mismatch, shared across replicas) and the
trusted-documents mode with its CLI."""

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
from tests.hardening_support import app_client
from tests.users_support import count_statements

QUERY = "query Health { health { status } }"


def apq(sha: str, query: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha}}}
    if query is not None:
        body["query"] = query
    return body


async def test_apq_miss_register_hit(client: httpx.AsyncClient, db: Database) -> None:
    sha = sha256_hex(QUERY)
    miss = (await client.post("/graphql", json=apq(sha))).json()
    assert miss["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    assert miss["errors"][0]["message"] == "PersistedQueryNotFound"

    registered = (await client.post("/graphql", json=apq(sha, QUERY))).json()
    assert registered == {"data": {"health": {"status": "ok"}}}
    async with db.engine.connect() as conn:
        stored = (await conn.execute(text("SELECT query, trusted FROM persisted_queries"))).all()
    # Stored without ignored characters (whitespace, comments): same document, fewer bytes.
    assert [tuple(r) for r in stored] == [("query Health{health{status}}", False)]

    hit = (await client.post("/graphql", json=apq(sha))).json()
    assert hit == {"data": {"health": {"status": "ok"}}}
    # GET with the hash only (what Apollo sends for cacheable queries)
    import json

    get = await client.get("/graphql", params={"extensions": json.dumps(apq(sha)["extensions"])})
    assert get.json() == {"data": {"health": {"status": "ok"}}}


async def test_apq_hash_mismatch_is_refused(client: httpx.AsyncClient, db: Database) -> None:
    body = (await client.post("/graphql", json=apq("0" * 64, QUERY))).json()
    assert body["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_HASH_MISMATCH"
    async with db.engine.connect() as conn:
        assert (
            await conn.execute(text("SELECT count(*) FROM persisted_queries"))
        ).scalar_one() == 0


async def test_invalid_documents_are_not_stored(client: httpx.AsyncClient, db: Database) -> None:
    bad = "{ nope }"
    body = (await client.post("/graphql", json=apq(sha256_hex(bad), bad))).json()
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    async with db.engine.connect() as conn:
        assert (
            await conn.execute(text("SELECT count(*) FROM persisted_queries"))
        ).scalar_one() == 0


async def test_stored_documents_are_shared_by_replicas(db: Database) -> None:
    sha = sha256_hex(QUERY)
    async with app_client(db) as first, app_client(db) as second:
        assert (await first.post("/graphql", json=apq(sha, QUERY))).json()["data"]
        # The second replica has never seen it: it finds it in PostgreSQL.
        assert (await second.post("/graphql", json=apq(sha))).json() == {
            "data": {"health": {"status": "ok"}}
        }


def _reads_of_persisted_queries(statements: list[str]) -> list[str]:
    return [s for s in statements if s.lstrip().upper().startswith("SELECT") and "persisted" in s]


async def test_apq_cache_is_bounded(db: Database) -> None:
    async with app_client(db, graphql={"persisted_query_cache_size": 2}) as http:
        for i in range(5):
            query = f"query Q{i} {{ health {{ status }} }}"
            assert (await http.post("/graphql", json=apq(sha256_hex(query), query))).json()["data"]
        # The two most recent are served from memory: no look-up in persisted_queries.
        for i in (3, 4):
            recent = f"query Q{i} {{ health {{ status }} }}"
            with count_statements(db) as statements:
                assert (await http.post("/graphql", json=apq(sha256_hex(recent)))).json()["data"]
            assert not _reads_of_persisted_queries(statements), statements
        # Evicted entries are still served, from PostgreSQL.
        first = "query Q0 { health { status } }"
        with count_statements(db) as statements:
            assert (await http.post("/graphql", json=apq(sha256_hex(first)))).json()["data"]
        assert _reads_of_persisted_queries(statements), statements


@pytest.fixture
def documents_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "operations"
    (folder / "nested").mkdir(parents=True)
    (folder / "health.graphql").write_text(QUERY, encoding="utf-8")
    (folder / "nested" / "typename.graphql").write_text("query T { __typename }", encoding="utf-8")
    return folder


async def test_trusted_documents_mode(
    db: Database,
    documents_folder: Path,
    admin_token: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("USER_SERVICE_DATABASE_URL", db.url)
    assert await asyncio.to_thread(main, ["documents", "register", str(documents_folder)]) == 0
    printed = capsys.readouterr().out
    assert sha256_hex(QUERY) in printed and "typename.graphql" in printed

    async with app_client(db, graphql={"trusted_documents_only": True}) as http:
        adhoc = (await http.post("/graphql", json={"query": "{ health { status } }"})).json()
        assert adhoc["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_REQUIRED"
        # A registered document runs by hash, with or without its text.
        by_hash = (await http.post("/graphql", json=apq(sha256_hex(QUERY)))).json()
        assert by_hash == {"data": {"health": {"status": "ok"}}}
        with_text = (await http.post("/graphql", json=apq(sha256_hex(QUERY), QUERY))).json()
        assert with_text["data"] == {"health": {"status": "ok"}}
        # An automatic (untrusted) registration does not open the door.
        other = "query Other { health { status } }"
        refused = (await http.post("/graphql", json=apq(sha256_hex(other), other))).json()
        assert refused["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_REQUIRED"
        # Admins may still send ad-hoc queries.
        admin = await http.post(
            "/graphql",
            json={"query": "{ health { status } }"},
            headers={"Authorization": f"Bearer {admin_token}"},
        )
        assert admin.json() == {"data": {"health": {"status": "ok"}}}


async def test_register_requires_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await asyncio.to_thread(main, ["documents", "register", str(tmp_path)]) == 2
    assert "no .graphql files" in capsys.readouterr().err
