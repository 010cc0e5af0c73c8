"""Settings from the YAML file, the seed's environment variable names, and bad values."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from gql_api.config import ConfigError, load_settings, parse_duration

SECRET = "s" * 40


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def test_file_values_and_durations(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        """
database:
  host: db.internal
  port: 6543
  username: svc
  password: "p@ss word"
  database: users
  sslmode: require
  max_open_conns: 40
  max_idle_conns: 8
  conn_max_lifetime: 30m
  conn_max_idle_time: 5m
  log_level: info
""",
    )
    settings = load_settings(config_file=path, environ={})
    db = settings.database
    assert (db.host, db.port, db.username, db.database) == ("db.internal", 6543, "svc", "users")
    assert db.conn_max_lifetime == timedelta(minutes=30)
    assert db.conn_max_idle_time == timedelta(minutes=5)
    assert not db.embedded
    # The password is URL-quoted; sslmode travels in the query string.
    assert (
        db.server_url() == "postgresql://svc:p%40ss%20word@db.internal:6543/users?sslmode=require"
    )


def test_environment_overrides_file_with_the_seed_names(tmp_path: Path) -> None:
    path = write_config(tmp_path, "database:\n  host: from-file\n  port: 5432\n")
    environ = {
        "USER_SERVICE_DATABASE_HOST": "from-env",
        "USER_SERVICE_DATABASE_PORT": "6000",
        "USER_SERVICE_DATABASE_USERNAME": "u",
        "USER_SERVICE_DATABASE_PASSWORD": "pw",
        "USER_SERVICE_DATABASE_DATABASE": "d",
        "USER_SERVICE_DATABASE_SSLMODE": "verify-full",
        "USER_SERVICE_DATABASE_MAXOPENCONNS": "50",
        "USER_SERVICE_DATABASE_MAXIDLECONNS": "7",
        "USER_SERVICE_DATABASE_CONNMAXLIFETIME": "1h",
    }
    db = load_settings(config_file=path, environ=environ).database
    assert (db.host, db.port, db.username, db.password, db.database) == (
        "from-env",
        6000,
        "u",
        "pw",
        "d",
    )
    assert db.sslmode.value == "verify-full"
    assert (db.max_open_conns, db.max_idle_conns) == (50, 7)
    assert db.conn_max_lifetime == timedelta(hours=1)


def test_underscored_names_and_other_sections() -> None:
    settings = load_settings(
        environ={
            "USER_SERVICE_DATABASE_MAX_OPEN_CONNS": "12",
            "USER_SERVICE_SERVER_PORT": "9000",
            "USER_SERVICE_AUTH_JWT_SECRET": SECRET,
            "USER_SERVICE_AUTH_BCRYPTROUNDS": "10",
            "USER_SERVICE_LOGGING_LEVEL": "debug",
            "USER_SERVICE_SERVER_CORS_ORIGINS": "https://a.example, https://b.example",
        }
    )
    assert settings.database.max_open_conns == 12
    assert settings.server.port == 9000
    assert settings.auth.bcrypt_rounds == 10
    assert settings.logging.level == "debug"
    assert settings.server.cors_origins == ["https://a.example", "https://b.example"]


def test_database_url_is_honoured_and_file_chosen_by_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "config.yaml").write_text("server:\n  port: 8123\n", encoding="utf-8")
    monkeypatch.setenv("USER_SERVICE_CONFIG_DIR", str(tmp_path))
    import os

    settings = load_settings(
        environ={**os.environ, "USER_SERVICE_ENV": "test", "DATABASE_URL": "postgresql://x@h/db"}
    )
    assert settings.env.value == "test"
    assert settings.server.port == 8123
    assert settings.database.server_url() == "postgresql://x@h/db"


def test_no_database_configured_means_embedded() -> None:
    settings = load_settings(environ={})
    assert settings.database.embedded
    assert settings.database.server_url() is None


@pytest.mark.parametrize(
    ("environ", "key", "value"),
    [
        ({"USER_SERVICE_DATABASE_PORT": "abc"}, "database.port", "'abc'"),
        (
            {"USER_SERVICE_DATABASE_CONNMAXLIFETIME": "5 parsecs"},
            "database.conn_max_lifetime",
            "'5 parsecs'",
        ),
        ({"USER_SERVICE_DATABASE_SSLMODE": "sometimes"}, "database.sslmode", "'sometimes'"),
        ({"USER_SERVICE_DATABASE_MAXOPENCONNS": "-1"}, "database.max_open_conns", "'-1'"),
        ({"USER_SERVICE_ENV": "staging"}, "USER_SERVICE_ENV", "'staging'"),
    ],
)
def test_bad_values_stop_with_one_line_naming_key_and_value(
    environ: dict[str, str], key: str, value: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=environ)
    message = str(caught.value)
    assert "\n" not in message
    assert key in message and value in message


def test_unknown_key_in_file_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, "database:\n  hostt: typo\n")
    with pytest.raises(ConfigError, match=r"database\.hostt"):
        load_settings(config_file=path, environ={})


def test_invalid_yaml_is_one_clear_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, "database: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(config_file=path, environ={})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("5m", 300), ("10s", 10), ("1h30m", 5400), ("250ms", 0.25), ("15", 15)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["5 parsecs", "m", "", "10x", "-5m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


async def test_pool_limits_hold_on_the_server(fresh_database: Any) -> None:
    """max_open_conns caps the connections a process opens, max_idle_conns is what stays open
    once they have sat idle; seen from PostgreSQL, not from the pool's attributes."""
    from gql_api.db import Database
    from tests.conftest import make_settings

    url = await fresh_database()
    settings = make_settings(
        url, database={"max_open_conns": 3, "max_idle_conns": 1, "pool_timeout": "1s"}
    )
    db = Database(settings.database, url, None)
    observer = await asyncpg.connect(url)

    async def backends() -> int:
        return int(
            await observer.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )

    try:
        async with contextlib.AsyncExitStack() as held:
            for _ in range(3):
                conn = await held.enter_async_context(db.engine.connect())
                await conn.execute(text("SELECT 1"))
            assert await backends() == 3
            with pytest.raises(PoolTimeoutError):  # a fourth waits the pool timeout, then fails
                async with db.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
            assert await backends() == 3
        assert await backends() == 3  # returned, all three are kept for the next request
        assert await db.close_idle_excess(idle_for_s=60) == 0  # idle for less than that
        # The server does this every half second (gql_api.web.lifespan).
        assert await db.close_idle_excess(idle_for_s=0) == 2
        assert await backends() == 1  # the two beyond max_idle_conns are closed
        async with contextlib.AsyncExitStack() as held:  # and their slots given back
            for _ in range(3):
                conn = await held.enter_async_context(db.engine.connect())
                await conn.execute(text("SELECT 1"))
            assert await backends() == 3
    finally:
        await observer.close()
        await db.dispose()
