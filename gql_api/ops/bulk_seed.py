"""``gql-api seed --users N``: load N users, each with a profile and 3 sessions, quickly.

The rows are generated inside PostgreSQL (``generate_series``), one statement per batch of
users: no row crosses the network, and the three inserts of a batch share one data-modifying
CTE. Every user gets the same password hash, computed once (bcrypt is ~0.3 s per hash at cost 12;
100,000 hashes would take hours). Sessions get random token hashes.

Idempotent enough: users are ``bulk-<n>@example.com`` for n in 1..N, and an address that already
exists is skipped (``ON CONFLICT DO NOTHING``), together with its profile and sessions. Running
``--users 1000`` after ``--users 500`` adds 500.
"""

from __future__ import annotations

import logging
import secrets

from sqlalchemy import text

from gql_api.auth.passwords import hash_password
from gql_api.db import Database

log = logging.getLogger(__name__)

BATCH_SIZE = 10_000
SESSIONS_PER_USER = 3

FIRST_NAMES = (
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth "
    "Aiko Chen Fatima Olga Mateo Amara Lars Priya Yusuf Zoe"
).split()
LAST_NAMES = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez "
    "Tanaka Wang Haddad Ivanova Silva Okafor Nilsson Patel Kaya Dubois"
).split()

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


async def bulk_seed_users(
    db: Database, n: int, *, rounds: int = 12, password: str | None = None
) -> int:
    """Insert users ``bulk-1..n@example.com`` that do not exist yet; returns how many were new.

    ``password`` defaults to a random one nobody is told: these accounts are for load, not login.
    """
    password_hash = await hash_password(password or secrets.token_urlsafe(18), rounds)
    salt = secrets.token_hex(16)
    created = 0
    for start in range(1, n + 1, BATCH_SIZE):
        stop = min(start + BATCH_SIZE, n + 1)
        # One transaction per batch: a failure keeps the batches already loaded.
        async with db.transaction() as session:
            result = await session.execute(
                _BATCH,
                {
                    "password_hash": password_hash,
                    "start": start,
                    "stop": stop,
                    "salt": salt,
                    "first_names": FIRST_NAMES,
                    "last_names": LAST_NAMES,
                    "sessions": SESSIONS_PER_USER,
                },
            )
            created += int(result.scalar_one())
        log.info("bulk seed: %d of %d users", stop - 1, n)
    return created
