"""What a user following the guide meets (issue 16): the development file is read and complete,
the guide's data and SQL work, a browser frontend on localhost is allowed, destructive commands
ask first, the gap after a downgrade answers SERVICE_UNAVAILABLE, plain SQL dumps restore."""

from __future__ import annotations

import asyncio
import os
import pty
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from gql_api.cli import main
from gql_api.config import Settings, load_settings
from gql_api.db import Database, backup, libpq_url, migrations
from gql_api.web.app import create_app
from tests.conftest import GraphQLClient, error_codes, make_settings
from tests.server_support import REPO, clean_environ

DEV_CONFIG = REPO / "configs" / "development" / "config.yaml"
# As the guide writes it: no lower(), the conflict target is the column itself.
GUIDE_ADMIN_INSERT = """
INSERT INTO users (email, password_hash, first_name, last_name, role, email_verified)
VALUES ('admin@api-server.com', '$2a$10$guide.placeholder.hash.not.a.real.one', 'System',
        'Administrator', 'admin', true)
ON CONFLICT (email) DO NOTHING
"""
LOGIN = "mutation($i: LoginInput!) { login(input: $i) { accessToken } }"


# --- configuration -------------------------------------------------------------------------------


def test_development_file_lists_every_setting_at_its_default() -> None:
    data = yaml.safe_load(DEV_CONFIG.read_text(encoding="utf-8"))
    for section, field in Settings.model_fields.items():
        model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        listed = set(data.get(section) or {})
        assert listed == set(model.model_fields), (section, set(model.model_fields) ^ listed)
    assert Settings(**data) == Settings(), "configs/development/config.yaml differs from defaults"


def test_no_environment_means_development_and_its_file(tmp_path: Path) -> None:
    (tmp_path / "development").mkdir()
    (tmp_path / "development" / "config.yaml").write_text("server:\n  port: 18201\n")
    settings = load_settings(environ={"USER_SERVICE_CONFIG_DIR": str(tmp_path)})
    assert settings.env.value == "development" and settings.server.port == 18201


def test_guide_defaults_for_database_name_and_pool() -> None:
    database = load_settings(environ={"USER_SERVICE_CONFIG": "/dev/null"}).database
    assert database.database == "api_server"
    assert (database.max_open_conns, database.max_idle_conns) == (25, 5)
    assert database.conn_max_lifetime.total_seconds() == 30 * 60
    assert database.conn_max_idle_time.total_seconds() == 5 * 60


# --- the guide's SQL -----------------------------------------------------------------------------


async def _run(db: Database, sql: str, **params: Any) -> list[Any]:
    async with db.engine.begin() as conn:
        result = await conn.execute(text(sql), params)
        return list(result.all()) if result.returns_rows else []


async def test_guides_insert_runs_and_case_variants_still_conflict(db: Database) -> None:
    await _run(db, GUIDE_ADMIN_INSERT)
    await _run(db, GUIDE_ADMIN_INSERT)  # the guide's script is re-runnable
    assert await _run(db, "SELECT count(*) FROM users") == [(1,)]

    insert = (
        "INSERT INTO users (email, password_hash, first_name, last_name) "
        "VALUES (:email, 'x', 'A', 'B') ON CONFLICT (email) DO NOTHING RETURNING id"
    )
    assert len(await _run(db, insert, email="Ann@X.com")) == 1
    assert await _run(db, insert, email="ann@x.com") == []  # the same address
    with pytest.raises(IntegrityError):
        await _run(
            db,
            "INSERT INTO users (email, password_hash, first_name, last_name) "
            "VALUES ('ANN@x.COM', 'x', 'A', 'B')",
        )
    found = await _run(db, "SELECT email FROM users WHERE email = 'aNN@x.com'")
    assert found == [("Ann@X.com",)]


async def test_email_lookup_search_and_order_stay_indexed(db: Database) -> None:
    await _run(
        db,
        "INSERT INTO users (email, password_hash, first_name, last_name) "
        "SELECT 'user' || g || '@example.com', 'x', 'F', 'L' FROM generate_series(1, 2000) g",
    )
    await _run(db, "ANALYZE users")
    plans = {}
    async with db.engine.begin() as conn:
        # A small table: the question is whether an index can serve each statement at all.
        await conn.execute(text("SET LOCAL enable_seqscan = off"))
        for name, sql in {
            "lookup": "SELECT id FROM users WHERE email = 'USER7@example.com'",
            # The `users(filter: {search})` shape: three ILIKEs OR-ed, email cast to text.
            "search": "SELECT id FROM users WHERE email::text ILIKE '%er77%' "
            "OR first_name ILIKE '%er77%' OR last_name ILIKE '%er77%'",
            "keyset": "SELECT id FROM users WHERE (email, id) > ('user5@example.com', "
            "'00000000-0000-0000-0000-000000000000') ORDER BY email, id LIMIT 20",
        }.items():
            rows = (await conn.execute(text(f"EXPLAIN {sql}"))).scalars().all()
            plans[name] = "\n".join(rows)
    assert "users_email_key" in plans["lookup"], plans["lookup"]
    assert "idx_users_email_trgm" in plans["search"], plans["search"]
    assert "idx_users_email_id" in plans["keyset"], plans["keyset"]


async def test_user_sessions_updated_at_is_kept_by_the_trigger(db: Database) -> None:
    [(user_id,)] = await _run(
        db,
        "INSERT INTO users (email, password_hash, first_name, last_name) "
        "VALUES ('s@example.com', 'x', 'S', 'T') RETURNING id",
    )
    [(session_id, created)] = await _run(
        db,
        "INSERT INTO user_sessions (user_id, token_hash, expires_at) "
        "VALUES (:u, repeat('a', 64), now() + interval '1 day') RETURNING id, updated_at",
        u=user_id,
    )
    [(updated,)] = await _run(
        db,
        "UPDATE user_sessions SET revoked_at = now() WHERE id = :s RETURNING updated_at",
        s=session_id,
    )
    assert updated > created


async def test_migration_0011_goes_down_and_up(fresh_database: Any) -> None:
    url = await fresh_database()
    database = Database(make_settings(url).database, url, None)
    try:
        await migrations.upgrade(database.engine, "head")
        await migrations.downgrade(database.engine, "0010")
        columns = await _run(
            database,
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'user_sessions' AND column_name = 'updated_at'",
        )
        assert columns == []
        with pytest.raises(IntegrityError):  # the lower(email) index is back
            await _run(
                database,
                "INSERT INTO users (email, password_hash, first_name, last_name) "
                "VALUES ('a@x.com', 'x', 'A', 'B'), ('A@X.com', 'x', 'A', 'B')",
            )
        await migrations.upgrade(database.engine, "head")
        assert await migrations.current_revision(database.engine) == migrations.head_revision()
    finally:
        await database.dispose()


# --- seed data -----------------------------------------------------------------------------------


async def _cli(argv: list[str]) -> int:
    return await asyncio.to_thread(main, argv)


@pytest.fixture
def scratch_env(monkeypatch: pytest.MonkeyPatch) -> Any:
    def use(url: str, **extra: str) -> None:
        for name in ("USER_SERVICE_ENV", "USER_SERVICE_CONFIG", "DATABASE_URL"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("USER_SERVICE_DATABASE_URL", url)
        monkeypatch.setenv("USER_SERVICE_AUTH_BCRYPTROUNDS", "4")
        for name, value in extra.items():
            monkeypatch.setenv(name, value)

    return use


async def test_seed_creates_the_guides_accounts(
    fresh_database: Any, scratch_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    url = await fresh_database()
    scratch_env(url)
    assert await _cli(["seed", "--test-users"]) == 0
    captured = capsys.readouterr()
    assert "gql-api: database postgresql://" in captured.err  # which database, on stderr
    passwords = {
        line.split()[1]: line.rsplit("password: ", 1)[1]
        for line in captured.out.splitlines()
        if line.startswith("created:")
    }
    assert set(passwords) == {"admin@api-server.com", "user1@test.com", "user2@test.com"}

    database = Database(make_settings(url).database, url, None)
    try:
        rows = await _run(
            database,
            "SELECT email, first_name, last_name, role, email_verified FROM users ORDER BY email",
        )
    finally:
        await database.dispose()
    assert [tuple(row) for row in rows] == [
        ("admin@api-server.com", "System", "Administrator", "admin", True),
        ("user1@test.com", "Test", "User1", "user", False),
        ("user2@test.com", "Test", "User2", "user", False),
    ]


async def test_seed_test_users_are_refused_in_production(
    fresh_database: Any, scratch_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    scratch_env(
        await fresh_database(),
        USER_SERVICE_ENV="production",
        USER_SERVICE_AUTH_JWT_SECRET="p" * 48,
        USER_SERVICE_AUTH_MFA_ENCRYPTION_KEY="k" * 48,
    )
    assert await _cli(["seed", "--test-users"]) == 2
    assert "--test-users is refused in production" in capsys.readouterr().err


# --- CORS ----------------------------------------------------------------------------------------


def _preflight(origin: str) -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": "POST"}


async def test_a_localhost_frontend_is_allowed_outside_production(
    client: httpx.AsyncClient,
) -> None:
    for origin in ("http://localhost:5173", "http://127.0.0.1:3000"):
        answer = await client.options("/graphql", headers=_preflight(origin))
        assert answer.status_code == 200, answer.text
        assert answer.headers["access-control-allow-origin"] == origin
    refused = await client.options("/graphql", headers=_preflight("http://evil.example"))
    assert refused.status_code == 400
    assert "http://evil.example" in refused.text and "server.cors_origins" in refused.text


async def test_production_allows_only_the_listed_origins(database_url: str, db: Database) -> None:
    settings = make_settings(
        database_url, env="production", server={"cors_origins": ["https://app.example.com"]}
    )
    transport = httpx.ASGITransport(app=create_app(settings, db))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        local = await http.options("/graphql", headers=_preflight("http://localhost:5173"))
        listed = await http.options("/graphql", headers=_preflight("https://app.example.com"))
    assert local.status_code == 400 and "http://localhost:5173" in local.text
    assert listed.status_code == 200
    assert listed.headers["access-control-allow-origin"] == "https://app.example.com"


# --- destructive commands and the gap they open --------------------------------------------------


async def test_migrate_down_needs_yes_without_a_terminal_and_the_gap_is_unavailable(
    fresh_database: Any, scratch_env: Any, database_url: str
) -> None:
    url = await fresh_database()
    env = {**clean_environ(), "USER_SERVICE_DATABASE_URL": url, "USER_SERVICE_CONFIG": "/dev/null"}
    command = [sys.executable, "-m", "gql_api.cli", "migrate"]
    up = subprocess.run(
        [*command, "up"], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    assert up.returncode == 0, up.stderr
    refused = subprocess.run(
        [*command, "down", "base"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2 and "--yes" in refused.stderr, refused.stderr

    database = Database(make_settings(url).database, url, None)
    app = create_app(make_settings(url), database)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40001))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                gql = GraphQLClient(http)
                variables = {"i": {"email": "nobody@example.com", "password": "not-it-123456"}}
                before = await gql(LOGIN, variables)
                assert error_codes(before) != ["SERVICE_UNAVAILABLE"], before
                down = subprocess.run(
                    [*command, "down", "base", "--yes"],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert down.returncode == 0, down.stderr
                during = await gql(LOGIN, variables)
                assert error_codes(during) == ["SERVICE_UNAVAILABLE"], during
                assert "migrations pending" in during["errors"][0]["message"]
                ready = await http.get("/readyz")
                assert ready.status_code == 503
    finally:
        await database.dispose()


@pytest.fixture
def data_folder() -> Iterator[Path]:
    """Outside pytest's temporary root, which any other pytest session starting resets to mode
    0700 (locking the embedded server's system user out); see tests/test_first_start.py."""
    folder = Path(tempfile.mkdtemp(prefix="gql_api-guide-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_migrate_down_on_a_terminal_asks_and_no_keeps_the_schema(data_folder: Path) -> None:
    env = {**clean_environ(), "USER_SERVICE_CONFIG": "/dev/null"}
    env["USER_SERVICE_DATABASE_DATA_DIR"] = str(data_folder / "pgdata")
    command = [sys.executable, "-m", "gql_api.cli", "migrate"]
    up = subprocess.run([*command, "up"], env=env, capture_output=True, text=True, timeout=120)
    assert up.returncode == 0, up.stderr
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [*command, "down", "base"],
            env=env,
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.write(controller, b"n\n")
        out, err = process.communicate(timeout=120)
    finally:
        os.close(controller)
        os.close(terminal)
    assert process.returncode == 2 and "[y/N]" in out + err and "cancelled" in err, out + err
    status = subprocess.run(
        [*command, "status"], env=env, capture_output=True, text=True, timeout=120
    )
    assert "(at head)" in status.stdout, status.stdout + status.stderr


async def test_restore_takes_a_plain_sql_dump(
    fresh_database: Any, scratch_env: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = await fresh_database()
    scratch_env(source)
    assert await _cli(["seed"]) == 0
    dump = tmp_path / "backup.sql"
    pg_dump = backup.find_tool("pg_dump")
    with dump.open("w", encoding="utf-8") as out:  # the guide's `pg_dump api_server > file`
        subprocess.run([pg_dump, "--no-owner", libpq_url(source)], stdout=out, check=True)
    assert not backup.is_custom_format(dump)

    target = await fresh_database()
    scratch_env(target)
    assert await _cli(["db", "restore", str(dump)]) == 0
    assert "restored" in capsys.readouterr().out
    database = Database(make_settings(target).database, target, None)
    try:
        rows = await _run(database, "SELECT email FROM users")
    finally:
        await database.dispose()
    assert rows == [("admin@api-server.com",)]
