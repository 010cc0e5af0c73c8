"""auditLogs: admins only, newest first, keyset pages, every filter."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from gql_api.db import Database
from tests.conftest import GraphQLClient, MadeUser, error_codes

T0 = datetime(2026, 3, 1, tzinfo=UTC)
QUERY = """
query($first: Int, $after: String, $filter: AuditLogFilter) {
  auditLogs(first: $first, after: $after, filter: $filter) {
    totalCount
    edges { cursor node { id actorId action targetType targetId changes ipAddress userAgent
                          requestId createdAt } }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
}
"""
ACTORS = [uuid.UUID(int=1), uuid.UUID(int=2)]
TARGETS = [uuid.UUID(int=10), uuid.UUID(int=11), uuid.UUID(int=12)]


@pytest.fixture
async def entries(db: Database, admin: MadeUser) -> list[dict[str, Any]]:
    rows = []
    for n in range(30):
        rows.append(
            {
                "actor": ACTORS[n % 2],
                "target": TARGETS[n % 3],
                "action": ["user.updated", "user.created", "user.deleted"][n % 3],
                # Pairs share created_at: the id breaks the tie.
                "at": T0 + timedelta(minutes=n // 2),
            }
        )
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO audit_logs (actor_id, action, target_type, target_id, changes, "
                "ip_address, user_agent, request_id, created_at) "
                "VALUES (:actor, :action, 'user', :target, '{\"k\": 1}', '10.0.0.1', 'ua', 'r', "
                ":at)"
            ),
            rows,
        )
    return rows


async def _walk(
    gql: GraphQLClient, token: str, size: int, where: Any = None
) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    after = None
    while True:
        body = await gql(QUERY, {"first": size, "after": after, "filter": where}, token=token)
        assert "errors" not in body, body
        conn = body["data"]["auditLogs"]
        nodes += [e["node"] for e in conn["edges"]]
        assert conn["pageInfo"]["hasPreviousPage"] is (after is not None)
        if not conn["pageInfo"]["hasNextPage"]:
            return nodes
        after = conn["pageInfo"]["endCursor"]


async def test_newest_first_in_pages(
    gql: GraphQLClient, admin_token: str, entries: list[dict[str, Any]]
) -> None:
    everything = await _walk(gql, admin_token, 100)
    assert len(everything) == 30
    keys = [(datetime.fromisoformat(n["createdAt"]), n["id"]) for n in everything]
    assert keys == sorted(keys, reverse=True)
    assert everything[0]["ipAddress"] == "10.0.0.1" and everything[0]["changes"] == {"k": 1}
    for size in (1, 7):
        assert await _walk(gql, admin_token, size) == everything


@pytest.mark.parametrize(
    ("where", "matches"),
    [
        ({"actorId": str(ACTORS[0])}, lambda e: e["actor"] == ACTORS[0]),
        ({"targetId": str(TARGETS[1])}, lambda e: e["target"] == TARGETS[1]),
        ({"action": "user.deleted"}, lambda e: e["action"] == "user.deleted"),
        (
            {"since": (T0 + timedelta(minutes=5)).isoformat()},
            lambda e: e["at"] >= T0 + timedelta(minutes=5),
        ),
        (
            {"until": (T0 + timedelta(minutes=5)).isoformat()},
            lambda e: e["at"] < T0 + timedelta(minutes=5),
        ),
        (
            {
                "actorId": str(ACTORS[1]),
                "action": "user.created",
                "since": T0.isoformat(),
                "until": (T0 + timedelta(minutes=10)).isoformat(),
            },
            lambda e: (
                e["actor"] == ACTORS[1]
                and e["action"] == "user.created"
                and e["at"] < T0 + timedelta(minutes=10)
            ),
        ),
    ],
)
async def test_filters(
    gql: GraphQLClient, admin_token: str, entries: list[dict[str, Any]], where: Any, matches: Any
) -> None:
    expected = sum(1 for e in entries if matches(e))
    nodes = await _walk(gql, admin_token, 4, where)
    assert len(nodes) == expected
    body = await gql(QUERY, {"first": 1, "filter": where}, token=admin_token)
    assert body["data"]["auditLogs"]["totalCount"] == expected


async def test_bad_arguments(gql: GraphQLClient, admin_token: str) -> None:
    for variables, field in (
        ({"first": 101}, "first"),
        ({"after": "garbage"}, "after"),
        ({"filter": {"actorId": "nope"}}, "filter.actorId"),
        ({"filter": {"action": "a" * 65}}, "filter.action"),
        ({"filter": {"action": "nul\x00"}}, "filter.action"),
    ):
        body = await gql(QUERY, variables, token=admin_token)
        assert error_codes(body) == ["BAD_USER_INPUT"], body
        assert field in body["errors"][0]["extensions"]["fields"]
    # A users cursor is not an audit cursor.
    users = await gql("{ users(first: 1) { pageInfo { endCursor } } }", token=admin_token)
    cursor = users["data"]["users"]["pageInfo"]["endCursor"]
    body = await gql(QUERY, {"after": cursor}, token=admin_token)
    assert error_codes(body) == ["BAD_USER_INPUT"]
