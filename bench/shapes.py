"""The client shapes in a run: which ones, their operations per app, and their checks.

Every shape's answer, from our server and from PostGraphile, is reduced by
``queries.summary`` (the users in order with their session counts and the total, or the viewer)
and compared with what the database itself says, so an app that answered other users, dropped
sessions or ignored the filter fails the check before anything is measured.
"""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import orjson

from bench import dataset, queries, statements
from bench.queries import Operation, Shape

# PostGraphile has no automatic persisted queries: its APQ figure is the Apollo text's.
POSTGRAPHILE_SAME_AS = {"apq": "apollo"}
STATEMENT_PAGES = (1, queries.PAGE, 100)


def parse(value: str) -> list[str]:
    """``--shapes``: comma-separated names of ``queries.EXTRA_SHAPES``, ``all`` or ``none``."""
    if value == "all":
        return list(queries.EXTRA_SHAPES)
    if value == "none":
        return []
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in queries.EXTRA_SHAPES]
    if unknown:
        raise ValueError(f"unknown shape(s) {unknown}; choose from {list(queries.EXTRA_SHAPES)}")
    return [n for n in queries.EXTRA_SHAPES if n in names]


def selected(extra: list[str]) -> list[Shape]:
    """Q2 and Q1 (always) and the chosen extra shapes, in ``queries.SHAPES`` order."""
    return [s for s in queries.SHAPES if s.name in ("Q1", "Q2") or s.name in extra]


def token_for(s: Shape, data: dataset.Dataset) -> str:
    return data.user_token if s.kind == "me" else data.admin_token


def server_operations(extra: list[str], data: dataset.Dataset) -> list[Operation]:
    """The extra shapes' operations for our server (Q1 and Q2 are the base operations)."""
    return [
        queries.shape_operation(s, token=token_for(s, data))
        for s in selected(extra)
        if s.name in extra
    ]


def postgraphile_names(extra: list[str]) -> list[str]:
    wanted = {POSTGRAPHILE_SAME_AS.get(s.name, s.name) for s in selected(extra)}
    return [s.name for s in queries.SHAPES if s.name in wanted]


def postgraphile_operations(extra: list[str], data: dataset.Dataset) -> list[Operation]:
    return [
        queries.postgraphile_operation(queries.shape(name), viewer_id=data.user_id)
        for name in postgraphile_names(extra)
    ]


# --- the JSON check ----------------------------------------------------------------------------

_ACTIVE_SESSIONS = (
    "(SELECT count(*) FROM user_sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL "
    "AND s.expires_at > now())"
)


async def expected(url: str, s: Shape, data: dataset.Dataset) -> dict[str, object]:
    """What the database says the shape's answer holds (the same reduction as ``summary``)."""
    if s.kind == "me":
        return {"id": data.user_id, "email": dataset.USER_EMAIL}
    where = "WHERE u.role = 'user' AND u.status = 'active'" if s.name == "filter" else ""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            f"SELECT u.id::text AS id, {_ACTIVE_SESSIONS} AS sessions FROM users u {where} "
            "ORDER BY u.created_at DESC, u.id DESC LIMIT $1",
            queries.PAGE,
        )
        total = await conn.fetchval(f"SELECT count(*) FROM users u {where}")
    finally:
        await conn.close()
    return {"totalCount": total, "users": [(r["id"], r["sessions"]) for r in rows]}


def verdict(answer: bytes, want: dict[str, object]) -> str:
    """The verdict: "same data as the database" or what differs."""
    try:
        got = queries.summary(answer)
    except (ValueError, KeyError, TypeError) as exc:
        return f"BAD ANSWER: {exc}"[:400]
    got = orjson.loads(orjson.dumps(got))  # tuples -> lists, as ``want`` after the same trip
    want = orjson.loads(orjson.dumps(want))
    if got == want:
        return "same data as the database"
    return f"DIFFERS: got {str(got)[:160]} want {str(want)[:160]}"


def setup(client: httpx.Client, op: Operation) -> None:
    """Send the operation's one-off request (APQ registration) and insist that it worked."""
    if op.setup is None:
        return
    response = client.post("/graphql", content=op.setup, headers=op.headers)
    if response.status_code != 200 or response.json().get("errors"):
        raise RuntimeError(f"{op.name}: registration refused: {response.text[:300]}")


def check(
    app_url: str, url: str, shape_ops: list[tuple[Shape, Operation]], data: dataset.Dataset
) -> dict[str, str]:
    """Each shape's answer from the app at ``app_url`` against the database."""
    found: dict[str, str] = {}
    with httpx.Client(base_url=app_url, timeout=30.0) as client:
        for s, op in shape_ops:
            setup(client, op)
            answer = client.post("/graphql", content=op.body, headers=op.headers).content
            found[s.name] = verdict(answer, asyncio.run(expected(url, s, data)))
    return found


# --- statements --------------------------------------------------------------------------------


async def count_statements(
    app_url: str, url: str, extra: list[str], data: dataset.Dataset, requests: int
) -> dict[str, dict[int, float]]:
    """Statements per request of each shape on our server, at page sizes 1, 20 and 100 for the
    users shapes (one figure for the ``me`` shapes)."""
    counted: dict[str, dict[int, float]] = {}
    for s in selected(extra):
        pages = STATEMENT_PAGES if s.kind == "users" else (queries.PAGE,)
        counted[s.name] = {}
        for first in pages:
            op = queries.shape_operation(s, token=token_for(s, data), first=first)
            await statements.warm(app_url, op)
            found = await statements.count(url, app_url, op, requests)
            counted[s.name][first] = found.per_request
    return counted
