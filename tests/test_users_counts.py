"""``user_counts`` (migration 0014): the per (role, status) counts that ``totalCount`` reads stay
exactly what counting the table says, whatever writes users, in every transaction's view."""

from __future__ import annotations

import itertools
import uuid

import asyncpg
from sqlalchemy import text

from gql_api.db import Database, libpq_url
from gql_api.repositories import user_listing
from gql_api.repositories.user_listing import UserFilter
from tests.conftest import GraphQLClient, insert_user
from tests.users_support import count_statements, forget_session_checks

ROLES = (None, "user", "admin")
STATUSES = (None, "active", "inactive")


async def _counted(db: Database) -> dict[tuple[str | None, str | None], int]:
    """Per filter: what count_users answers and what counting the table says, when equal."""
    found = {}
    for role, status in itertools.product(ROLES, STATUSES):
        where = UserFilter(role=role, status=status)
        assert where.by_role_and_status_only
        answered = await user_listing.count_users(db, where=where)
        async with db.engine.connect() as conn:
            counted = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM users "
                        "WHERE (CAST(:role AS text) IS NULL OR role = :role) "
                        "AND (CAST(:status AS text) IS NULL OR status = :status)"
                    ),
                    {"role": role, "status": status},
                )
            ).scalar_one()
        assert answered == counted, (role, status, answered, counted)
        found[role, status] = answered
    return found


async def test_counts_follow_every_kind_of_write(db: Database) -> None:
    assert (await _counted(db))[None, None] == 0
    made = [await insert_user(db, role="admin") for _ in range(2)]
    made += [await insert_user(db, status="inactive") for _ in range(3)]
    made += [await insert_user(db) for _ in range(4)]
    assert (await _counted(db))["user", "inactive"] == 3
    async with db.engine.begin() as conn:
        # One statement adding users of several groups, one moving some, one deleting some.
        await conn.execute(
            text(
                "INSERT INTO users (email, password_hash, first_name, last_name, role, status) "
                "SELECT 'bulk-' || g || '@example.com', 'x', 'B', 'U', "
                "CASE WHEN g % 3 = 0 THEN 'admin' ELSE 'user' END, "
                "CASE WHEN g % 2 = 0 THEN 'active' ELSE 'inactive' END "
                "FROM generate_series(1, 25) AS g"
            )
        )
        await conn.execute(
            text("UPDATE users SET status = 'inactive' WHERE role = 'admin' AND status = 'active'")
        )
        await conn.execute(text("UPDATE users SET last_login_at = now()"))  # moves nobody
        await conn.execute(
            text("UPDATE users SET role = 'admin', status = 'active' WHERE id = :id"),
            {"id": made[-1].id},
        )
        await conn.execute(text("DELETE FROM users WHERE email LIKE 'bulk-1%'"))
    counts = await _counted(db)
    assert counts[None, None] == 9 + 25 - 11  # bulk-1, bulk-10..19 are gone
    async with db.engine.begin() as conn:
        await conn.execute(text("TRUNCATE users CASCADE"))
    assert set((await _counted(db)).values()) == {0}


async def test_a_reader_counts_only_the_users_its_snapshot_sees(db: Database) -> None:
    await insert_user(db)
    writer = await asyncpg.connect(libpq_url(db.url))
    try:
        adding = writer.transaction()
        await adding.start()
        await writer.execute(
            "INSERT INTO users (email, password_hash, first_name, last_name) "
            "VALUES ($1, 'x', 'W', 'R')",
            f"w-{uuid.uuid4().hex[:8]}@example.com",
        )
        assert (await _counted(db))[None, None] == 1  # not committed: not seen, not counted
        await adding.rollback()
        assert (await _counted(db))[None, None] == 1
        async with writer.transaction():
            await writer.execute(
                "INSERT INTO users (email, password_hash, first_name, last_name, role) "
                "VALUES ($1, 'x', 'W', 'R', 'admin')",
                f"w-{uuid.uuid4().hex[:8]}@example.com",
            )
        assert (await _counted(db))["admin", None] == 1
    finally:
        await writer.close()


async def test_total_count_of_a_filtered_page(
    gql: GraphQLClient, admin_token: str, db: Database
) -> None:
    for status in ("active", "inactive", "inactive"):
        await insert_user(db, status=status)
    query = "query($f: UserFilter) { users(first: 1, filter: $f) { totalCount } }"
    for variables, expected in (
        ({}, 4),  # the admin too
        ({"f": {"role": "USER"}}, 3),
        ({"f": {"role": "USER", "status": "INACTIVE"}}, 2),
        ({"f": {"status": "ACTIVE"}}, 2),
        ({"f": {"status": "INACTIVE", "search": "example"}}, 2),  # counted from the table
    ):
        body = await gql(query, variables, token=admin_token)
        assert body.get("data") and body["data"]["users"]["totalCount"] == expected, body


async def test_a_page_reads_its_total_with_its_rows_and_an_empty_page_counts_apart(
    gql: GraphQLClient, admin_token: str, db: Database
) -> None:
    for status in ("active", "inactive", "inactive"):
        await insert_user(db, status=status)
    query = """query($f: UserFilter, $after: String) {
      users(first: 1, filter: $f, after: $after) { totalCount edges { cursor } }
    }"""
    last = await gql("{ users(last: 1) { edges { cursor } } }", token=admin_token)
    after_last = last["data"]["users"]["edges"][0]["cursor"]
    for variables, expected, statements_sent in (
        ({}, 4, 2),  # the viewer's authentication and the page, its total in the same statement
        ({"f": {"role": "USER", "status": "INACTIVE"}}, 2, 2),
        ({"f": {"role": "ADMIN", "status": "INACTIVE"}}, 0, 3),  # no row to carry it: counted
        ({"after": after_last}, 4, 3),  # past the end: no row either
        ({"f": {"status": "INACTIVE", "search": "example"}}, 2, 3),  # counted from the table
    ):
        await forget_session_checks(db)  # each request checks its session in the database
        with count_statements(db) as statements:
            body = await gql(query, variables, token=admin_token)
        assert body.get("data") and body["data"]["users"]["totalCount"] == expected, body
        assert len(statements) == statements_sent, (variables, statements)
