"""Bulk test users for load (gql_api.ops.bulk_seed): one statement per batch of users, with
their profiles and sessions."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# One batch: users n in [:start, :stop), then their profiles and sessions. Sort keys are spread
# (created_at over a year, last_login_at NULL for a fifth) so every `users` order has work to do.
_BATCH = text(
    """
    WITH made AS (
        INSERT INTO users (
            email, password_hash, first_name, last_name, role, status, email_verified,
            email_verified_at, last_login_at, login_count, created_at, updated_at
        )
        SELECT
            'bulk-' || n || '@example.com',
            :password_hash,
            (CAST(:first_names AS text[]))[1 + n % cardinality(CAST(:first_names AS text[]))],
            (CAST(:last_names AS text[]))[1 + (n / 20) % cardinality(CAST(:last_names AS text[]))],
            'user',
            CASE WHEN n % 20 = 0 THEN 'inactive' ELSE 'active' END,
            n % 5 <> 0,
            CASE WHEN n % 5 <> 0 THEN stamp + interval '1 hour' END,
            CASE WHEN n % 5 <> 1 THEN stamp + random() * (now() - stamp) END,
            CASE WHEN n % 5 <> 1 THEN 1 + n % 50 ELSE 0 END,
            stamp,
            stamp
        FROM (
            SELECT n, now() - random() * interval '365 days' AS stamp
            FROM generate_series(CAST(:start AS integer), CAST(:stop AS integer) - 1) AS n
        ) AS numbered
        ON CONFLICT DO NOTHING
        RETURNING id
    ), profiles AS (
        INSERT INTO user_profiles (user_id, timezone, locale, preferences)
        SELECT id, 'UTC', 'en', '{}'::jsonb FROM made
    ), sessions AS (
        INSERT INTO user_sessions (user_id, token_hash, expires_at, user_agent, last_used_at)
        SELECT id,
               encode(sha256(convert_to(gen_random_uuid()::text || :salt, 'UTF8')), 'hex'),
               now() + interval '30 days',
               'bulk-seed',
               now()
        FROM made CROSS JOIN generate_series(1, CAST(:sessions AS integer))
    )
    SELECT count(*) FROM made
    """
)


async def insert_batch(
    session: AsyncSession,
    *,
    start: int,
    stop: int,
    password_hash: str,
    salt: str,
    first_names: Sequence[str],
    last_names: Sequence[str],
    sessions_per_user: int,
) -> int:
    """Users ``bulk-<start..stop-1>@example.com`` that do not exist yet, each with a profile
    and ``sessions_per_user`` sessions; returns how many users were new."""
    result = await session.execute(
        _BATCH,
        {
            "password_hash": password_hash,
            "start": start,
            "stop": stop,
            "salt": salt,
            "first_names": list(first_names),
            "last_names": list(last_names),
            "sessions": sessions_per_user,
        },
    )
    return int(result.scalar_one())
