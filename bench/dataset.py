"""The benchmark's database: where it is, the dataset in it (seeded once) and the tokens.

The dataset is N bulk users (``gql_api.ops.bulk_seed``: each with a profile and 3 sessions) plus the
benchmark's own accounts, all with a profile and a long-lived session:

- ``bench-admin@example.com`` (admin, Q2/Q3) and ``bench-user@example.com`` (Q1), created now,
  so both are on Q2's page; their sessions carry an IP address, so ``ipAddress`` is not
  always null in the compared JSON;
- ``bench-login-<k>@example.com`` for Q4's login storm, with a known password hashed at the
  bcrypt cost the server is configured with (else every login would rehash), created long ago
  so that their growing session lists stay off the Q2 and Q3 pages.

Seeding is idempotent: bulk users are loaded only when fewer than N exist, the bench accounts
only when missing (or rehashed when the cost changed), and sessions about to expire are extended.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import asyncpg

from gql_api.auth.passwords import hash_cost, hash_password_sync
from gql_api.auth.tokens import issue_access_token
from gql_api.config import AuthSettings, load_settings
from gql_api.db import Database, migrations
from gql_api.db.embedded import EmbeddedServer, start_embedded
from gql_api.graphql.schema.pagination import encode_cursor
from gql_api.ops.bulk_seed import bulk_seed_users

DATABASE_NAME = "gql_api_bench"
# Used only by the benchmark's own apps and database; >= 32 bytes as the service requires.
JWT_SECRET = "bench-only-jwt-secret-" + "b" * 32
LOGIN_PASSWORD = "bench login password 1"
LOGIN_USERS = 8
ADMIN_EMAIL = "bench-admin@example.com"
USER_EMAIL = "bench-user@example.com"
# Tokens outlive any run; the server checks the signature and expiry, not the configured TTL.
TOKEN_TTL = timedelta(hours=12)
Q2_ORDER_TAG = "users:created_at:desc"  # the default order of `users`


@dataclass(frozen=True)
class Dataset:
    url: str
    users: int  # rows in `users`
    seeded_now: bool
    seed_seconds: float
    admin_token: str
    user_token: str
    user_id: str  # Q1's viewer (PostGraphile, which has no auth, reads it by primary key)
    login_emails: tuple[str, ...]
    deep_cursor: str
    deep_position: int


def open_database(database_url: str | None, data_dir: Path) -> tuple[str, EmbeddedServer | None]:
    """The URL of the benchmark's database: the given one, or an embedded server of its own."""
    if database_url:
        return database_url, None
    server = start_embedded(data_dir, DATABASE_NAME, cleanup_mode="stop")
    return server.url(DATABASE_NAME), server


def login_email(k: int) -> str:
    return f"bench-login-{k}@example.com"


async def prepare(url: str, *, users: int, bcrypt_rounds: int) -> Dataset:
    """Migrate, seed what is missing and issue the tokens of this run."""
    settings = load_settings(
        environ={},
        database={"url": url, "max_open_conns": 4, "max_idle_conns": 1},
        auth={"jwt_secret": JWT_SECRET, "bcrypt_rounds": bcrypt_rounds},
        logging={"level": "warning"},
    )
    db = Database(settings.database, url, None)
    started = time.perf_counter()
    try:
        await migrations.upgrade(db.engine, "head")
        conn = await asyncpg.connect(url)
        try:
            have = await conn.fetchval("SELECT count(*) FROM users WHERE email LIKE 'bulk-%'")
            seeded_now = have < users
            if seeded_now:
                await bulk_seed_users(db, users, rounds=bcrypt_rounds)
            admin = await _account(conn, ADMIN_EMAIL, role="admin", age_days=0)
            user = await _account(conn, USER_EMAIL, role="user", age_days=0)
            password_hash = await _login_hash(conn, bcrypt_rounds)
            for k in range(1, LOGIN_USERS + 1):
                await _account(
                    conn, login_email(k), role="user", age_days=1000, password_hash=password_hash
                )
            # Bulk sessions expire after 30 days: keep the dataset the same from run to run.
            await conn.execute(
                "UPDATE user_sessions SET expires_at = now() + interval '30 days' "
                "WHERE expires_at < now() + interval '2 days' AND revoked_at IS NULL "
                "AND user_agent = 'bulk-seed'"
            )
            await conn.execute("ANALYZE users; ANALYZE user_sessions; ANALYZE user_profiles")
            total = int(await conn.fetchval("SELECT count(*) FROM users"))
            deep_position = int(total * 0.9)
            deep = await conn.fetchrow(
                "SELECT created_at, id FROM users ORDER BY created_at DESC, id DESC "
                "OFFSET $1 LIMIT 1",
                deep_position,
            )
        finally:
            await conn.close()
    finally:
        await db.dispose()
    auth = AuthSettings(jwt_secret=JWT_SECRET, access_token_ttl=TOKEN_TTL)
    return Dataset(
        url=url,
        users=total,
        seeded_now=seeded_now,
        seed_seconds=time.perf_counter() - started,
        admin_token=issue_access_token(auth, user_id=admin[0], session_id=admin[1], role="admin")[
            0
        ],
        user_token=issue_access_token(auth, user_id=user[0], session_id=user[1], role="user")[0],
        user_id=str(user[0]),
        login_emails=tuple(login_email(k) for k in range(1, LOGIN_USERS + 1)),
        deep_cursor=encode_cursor(Q2_ORDER_TAG, deep["created_at"], deep["id"]),
        deep_position=deep_position,
    )


async def _login_hash(conn: asyncpg.Connection, rounds: int) -> str:
    """The login users' hash: the stored one when it has this cost, else a new one."""
    stored = await conn.fetchval("SELECT password_hash FROM users WHERE email = $1", login_email(1))
    if stored is not None and hash_cost(stored) == rounds:
        return str(stored)
    return await asyncio.to_thread(hash_password_sync, LOGIN_PASSWORD, rounds)


async def _account(
    conn: asyncpg.Connection,
    email: str,
    *,
    role: str,
    age_days: int,
    password_hash: str | None = None,
) -> tuple[uuid.UUID, uuid.UUID]:
    """A bench account with a profile and one long-lived session: (user id, session id)."""
    async with conn.transaction():
        row = await conn.fetchrow("SELECT id, password_hash FROM users WHERE email = $1", email)
        if row is None:
            user_id = await conn.fetchval(
                "INSERT INTO users (email, password_hash, first_name, last_name, role, status, "
                "email_verified, created_at, updated_at) VALUES ($1, $2, 'Bench', $3, $4, "
                "'active', true, now() - make_interval(days => $5), "
                "now() - make_interval(days => $5)) RETURNING id",
                email,
                password_hash or "!disabled",  # not a bcrypt hash: no password opens it
                email.split("@")[0].title(),
                role,
                age_days,
            )
            await conn.execute(
                "INSERT INTO user_profiles (user_id, bio, timezone, locale) "
                "VALUES ($1, 'Benchmark account', 'Europe/Paris', 'fr')",
                user_id,
            )
        else:
            user_id = row["id"]
            if password_hash is not None and row["password_hash"] != password_hash:
                await conn.execute(
                    "UPDATE users SET password_hash = $2 WHERE id = $1", user_id, password_hash
                )
        session_id = await conn.fetchval(
            "SELECT id FROM user_sessions WHERE user_id = $1 AND user_agent = 'bench' "
            "AND revoked_at IS NULL AND expires_at > now() + interval '1 day'",
            user_id,
        )
        if session_id is None:
            session_id = await conn.fetchval(
                "INSERT INTO user_sessions (user_id, token_hash, expires_at, user_agent, "
                "ip_address) VALUES ($1, encode(sha256(gen_random_uuid()::text::bytea), 'hex'), "
                "now() + interval '3650 days', 'bench', '192.0.2.10') RETURNING id",
                user_id,
            )
    return user_id, session_id
