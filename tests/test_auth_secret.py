"""The JWT secret: at least 32 bytes; production refuses to start without one; development
generates one and keeps it in the data directory so tokens survive restarts."""

from __future__ import annotations

import stat
import uuid
from pathlib import Path

import pytest

from gql_api.auth.tokens import decode_access_token, issue_access_token
from gql_api.config import ConfigError, ensure_jwt_secret, load_settings
from gql_api.web.app import create_app, secret_file_for


def _env(env: str, **extra: str) -> dict[str, str]:
    return {"USER_SERVICE_ENV": env, "USER_SERVICE_CONFIG": "/dev/null", **extra}


def test_production_refuses_to_start_without_a_secret() -> None:
    with pytest.raises(ConfigError, match="jwt_secret is missing"):
        load_settings(environ=_env("production"))


def test_short_secret_is_refused_everywhere() -> None:
    for env in ("production", "development", "test"):
        with pytest.raises(ConfigError, match="too short"):
            load_settings(environ=_env(env, USER_SERVICE_AUTH_JWT_SECRET="s" * 31))


def test_32_bytes_are_enough() -> None:
    settings = load_settings(
        environ=_env(
            "production",
            USER_SERVICE_AUTH_JWT_SECRET="s" * 32,
            USER_SERVICE_AUTH_MFA_ENCRYPTION_KEY="k" * 32,
        )
    )
    assert settings.auth.jwt_secret == "s" * 32


def test_secret_length_is_counted_in_bytes() -> None:
    with pytest.raises(ConfigError, match="too short"):
        load_settings(environ=_env("development", USER_SERVICE_AUTH_JWT_SECRET="é" * 15))  # 30 B
    load_settings(environ=_env("development", USER_SERVICE_AUTH_JWT_SECRET="é" * 16))  # 32 B


def test_development_generates_and_keeps_a_secret(tmp_path: Path) -> None:
    environ = _env("development", USER_SERVICE_DATABASE_DATA_DIR=str(tmp_path / "pgdata"))
    first = load_settings(environ=environ)
    assert first.auth.jwt_secret is None
    secret_file = secret_file_for(first)
    assert secret_file.parent == tmp_path
    secret = ensure_jwt_secret(first, secret_file)
    assert len(secret.encode()) >= 32 and first.auth.jwt_secret == secret
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600

    # A restart reads the same secret back, so tokens issued before it stay valid.
    token, _ = issue_access_token(
        first.auth, user_id=uuid.uuid4(), session_id=uuid.uuid4(), role="user"
    )
    second = load_settings(environ=environ)
    assert ensure_jwt_secret(second, secret_file_for(second)) == secret
    decode_access_token(second.auth, token)


def test_create_app_sets_up_the_secret(tmp_path: Path) -> None:
    settings = load_settings(
        environ=_env("development", USER_SERVICE_DATABASE_DATA_DIR=str(tmp_path / "pgdata"))
    )
    create_app(settings)
    assert settings.auth.jwt_secret and (tmp_path / "jwt_secret").is_file()


def test_a_configured_secret_wins_over_the_file(tmp_path: Path) -> None:
    (tmp_path / "jwt_secret").write_text("f" * 48)
    settings = load_settings(
        environ=_env(
            "development",
            USER_SERVICE_DATABASE_DATA_DIR=str(tmp_path / "pgdata"),
            USER_SERVICE_AUTH_JWT_SECRET="c" * 40,
        )
    )
    assert ensure_jwt_secret(settings, secret_file_for(settings)) == "c" * 40
