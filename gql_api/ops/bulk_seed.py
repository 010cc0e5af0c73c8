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

from gql_api.auth.passwords import hash_password
from gql_api.db import Database
from gql_api.repositories import bulk_users

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
            created += await bulk_users.insert_batch(
                session,
                start=start,
                stop=stop,
                password_hash=password_hash,
                salt=salt,
                first_names=FIRST_NAMES,
                last_names=LAST_NAMES,
                sessions_per_user=SESSIONS_PER_USER,
            )
        log.info("bulk seed: %d of %d users", stop - 1, n)
    return created
