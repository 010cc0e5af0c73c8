"""Migrations own the schema: they match the models, go down to base and up again, and create
the trigger and constraints the service relies on."""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from gql_api.db import Database, migrations
from gql_api.models import metadata
from tests.conftest import make_settings


def _diff(connection: Any) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "include_object": lambda obj, name, type_, reflected, compare_to: (
                not (type_ == "table" and name == "alembic_version")
            ),
        },
    )
    with warnings.catch_warnings():
        # alembic warns that it skips expression-based indexes when comparing
        warnings.simplefilter("ignore", UserWarning)
        return list(compare_metadata(context, metadata))


@pytest.fixture
async def scratch_db(fresh_database: Any) -> Any:
    url = await fresh_database()
    database = Database(make_settings(url).database, url, None)
    yield database
    await database.dispose()


async def test_models_match_migrations_and_round_trip(scratch_db: Database) -> None:
    engine = scratch_db.engine
    await migrations.upgrade(engine, "head")
    assert await migrations.current_revision(engine) == migrations.head_revision()
    async with engine.connect() as conn:
        assert await conn.run_sync(_diff) == []

    # Every revision steps down and up again.
    revisions = [r["revision"] for r in migrations.history()]
    for _ in revisions:
        await migrations.downgrade(engine, "-1")
    assert await migrations.current_revision(engine) is None
    async with engine.connect() as conn:
        tables = (
            (
                await conn.execute(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                )
            )
            .scalars()
            .all()
        )
    assert set(tables) <= {"alembic_version"}

    await migrations.upgrade(engine, "head")
    async with engine.connect() as conn:
        assert await conn.run_sync(_diff) == []


async def test_two_concurrent_upgrades_do_not_collide(scratch_db: Database) -> None:
    other = Database(scratch_db.settings, scratch_db.url, None)
    try:
        await asyncio.gather(
            migrations.upgrade(scratch_db.engine, "head"), migrations.upgrade(other.engine, "head")
        )
    finally:
        await other.dispose()
    assert await migrations.current_revision(scratch_db.engine) == migrations.head_revision()


async def _insert(db: Database, email: str) -> Any:
    async with db.engine.begin() as conn:
        return (
            await conn.execute(
                text(
                    "INSERT INTO users (email, password_hash, first_name, last_name) "
                    "VALUES (:e, 'x', 'A', 'B') RETURNING id, created_at, updated_at"
                ),
                {"e": email},
            )
        ).one()


async def test_updated_at_trigger(db: Database) -> None:
    row = await _insert(db, "trigger@example.com")
    assert row.updated_at == row.created_at
    async with db.engine.begin() as conn:
        await conn.execute(text("SELECT pg_sleep(0.01)"))
    async with db.engine.begin() as conn:
        updated = (
            await conn.execute(
                text("UPDATE users SET first_name = 'C' WHERE id = :id RETURNING updated_at"),
                {"id": row.id},
            )
        ).scalar_one()
    assert updated > row.updated_at


async def test_email_unique_ignoring_case(db: Database) -> None:
    await _insert(db, "Case@Example.com")
    with pytest.raises(IntegrityError):
        await _insert(db, "case@example.COM")


async def test_role_and_status_are_checked(db: Database) -> None:
    async with db.engine.begin() as conn:
        with pytest.raises(IntegrityError):
            await conn.execute(
                text(
                    "INSERT INTO users (email, password_hash, first_name, last_name, role) "
                    "VALUES ('r@example.com', 'x', 'A', 'B', 'superuser')"
                )
            )


async def test_profile_and_sessions_go_with_the_user_and_audit_stays(db: Database) -> None:
    row = await _insert(db, "cascade@example.com")
    async with db.engine.begin() as conn:
        await conn.execute(text("INSERT INTO user_profiles (user_id) VALUES (:id)"), {"id": row.id})
        await conn.execute(
            text(
                "INSERT INTO user_sessions (user_id, token_hash, expires_at) "
                "VALUES (:id, 'h', now() + interval '1 day')"
            ),
            {"id": row.id},
        )
        await conn.execute(
            text("INSERT INTO audit_logs (action, target_id) VALUES ('x', :id)"), {"id": row.id}
        )
        await conn.execute(text("DELETE FROM users WHERE id = :id"), {"id": row.id})
        counts = (
            await conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM user_profiles),"
                    " (SELECT count(*) FROM user_sessions), (SELECT count(*) FROM audit_logs)"
                )
            )
        ).one()
    assert tuple(counts) == (0, 0, 1)
