"""SQL statements per request, from pg_stat_statements (all a process sends on the wire).

Non-destructive: the view is read before and after a few sequential requests and the calls are
diffed per query id in this database; nothing is reset, so a shared server is left alone. Query
ids come from the parse tree, so two apps sending the same statement share an id: that is how the
reference is checked to issue exactly the server's statements.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import asyncpg
import httpx

from bench.queries import Operation

SNAPSHOT = (
    "SELECT queryid, calls, query FROM pg_stat_statements "
    "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND queryid IS NOT NULL"
)


@dataclass
class StatementCount:
    requests: int
    calls: Counter[int] = field(default_factory=Counter)  # query id -> calls in the window
    texts: dict[int, str] = field(default_factory=dict)

    @property
    def per_request(self) -> float:
        return sum(self.calls.values()) / self.requests

    def per_request_where(self, data: bool) -> float:
        """Statements per request that are (``data``) or are not reads of our tables."""
        picked = sum(c for q, c in self.calls.items() if is_data(self.texts[q]) == data)
        return picked / self.requests

    def breakdown(self) -> list[tuple[float, str]]:
        """(calls per request, statement text) most frequent first."""
        return sorted(
            ((c / self.requests, " ".join(self.texts[q].split())) for q, c in self.calls.items()),
            reverse=True,
        )

    def data_ids(self) -> set[int]:
        return {q for q in self.calls if is_data(self.texts[q])}


def is_connection_setup(text: str) -> bool:
    """What asyncpg sends when a connection first meets a type (its type introspection, with
    ``jit`` read, switched off and restored around it through ``set_config``): it belongs to
    connecting, not to a request, and lands in the window only when a pool happens to open a
    connection during it. Neither app calls ``set_config`` itself."""
    words = " ".join(text.split())
    return "typeinfo_tree" in words or "set_config(" in words


def is_data(text: str) -> bool:
    """A statement that reads the service's tables (not BEGIN, ROLLBACK or a ping)."""
    return " from " in f" {' '.join(text.lower().split())} "


async def available(url: str) -> str | None:
    """None when pg_stat_statements can be read here, else why not."""
    try:
        conn = await asyncpg.connect(url)
    except (OSError, asyncpg.PostgresError) as exc:
        return f"cannot connect: {exc}"
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.fetch(SNAPSHOT + " LIMIT 1")
        return None
    except asyncpg.PostgresError as exc:
        return f"pg_stat_statements unavailable: {exc}".splitlines()[0]
    finally:
        await conn.close()


async def _snapshot(conn: asyncpg.Connection) -> tuple[dict[int, int], dict[int, str]]:
    rows = await conn.fetch(SNAPSHOT)
    calls: dict[int, int] = Counter()
    texts: dict[int, str] = {}
    for row in rows:
        calls[row["queryid"]] += row["calls"]
        texts[row["queryid"]] = row["query"]
    return calls, texts


async def warm(app_url: str, op: Operation, requests: int = 5) -> None:
    async with httpx.AsyncClient(base_url=app_url, timeout=30.0) as client:
        if op.setup is not None:  # APQ: the document is stored before its hash is sent alone
            (await client.post("/graphql", content=op.setup, headers=op.headers)).raise_for_status()
        for _ in range(requests):
            (await client.post("/graphql", content=op.body, headers=op.headers)).raise_for_status()


async def count(url: str, app_url: str, op: Operation, requests: int = 20) -> StatementCount:
    """Send ``op`` ``requests`` times, one after another, and count what reached PostgreSQL."""
    conn = await asyncpg.connect(url)
    try:
        before, _ = await _snapshot(conn)
        async with httpx.AsyncClient(base_url=app_url, timeout=30.0) as client:
            for _ in range(requests):
                response = await client.post("/graphql", content=op.body, headers=op.headers)
                response.raise_for_status()
                if response.json().get("errors"):
                    raise RuntimeError(f"{op.name} failed: {response.text[:300]}")
        after, texts = await _snapshot(conn)
    finally:
        await conn.close()
    result = StatementCount(requests=requests)
    for query_id, calls in after.items():
        delta = calls - before.get(query_id, 0)
        text = texts[query_id]
        if delta > 0 and "pg_stat_statements" not in text and not is_connection_setup(text):
            result.calls[query_id] = delta
            result.texts[query_id] = text
    return result
