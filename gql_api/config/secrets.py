"""Secrets: what production refuses to run without, and development secrets kept in files."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from gql_api.config.values import (
    ENV_PREFIX,
    MIN_JWT_SECRET_BYTES,
    ConfigError,
    Environment,
)

if TYPE_CHECKING:
    from gql_api.config.loading import Settings


def check_secrets(settings: Settings) -> None:
    secret = settings.auth.jwt_secret
    if secret is not None and len(secret.encode()) < MIN_JWT_SECRET_BYTES:
        raise ConfigError(
            f"configuration error: auth.jwt_secret is too short ({len(secret.encode())} bytes): "
            f"use at least {MIN_JWT_SECRET_BYTES} random bytes, e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
        )
    if settings.is_production and secret is None:
        raise ConfigError(
            "configuration error: auth.jwt_secret is missing: production needs "
            f"{ENV_PREFIX}AUTH_JWT_SECRET of at least {MIN_JWT_SECRET_BYTES} bytes"
        )
    mfa_key = settings.auth.mfa_encryption_key
    if mfa_key is not None and len(mfa_key.encode()) < MIN_JWT_SECRET_BYTES:
        raise ConfigError(
            "configuration error: auth.mfa_encryption_key is too short "
            f"({len(mfa_key.encode())} bytes): use at least {MIN_JWT_SECRET_BYTES} random bytes"
        )
    if mfa_key is not None and mfa_key == secret:
        raise ConfigError(
            "configuration error: auth.mfa_encryption_key must differ from auth.jwt_secret"
        )
    if settings.is_production and mfa_key is None:
        raise ConfigError(
            "configuration error: auth.mfa_encryption_key is missing: production needs "
            f"{ENV_PREFIX}AUTH_MFA_ENCRYPTION_KEY of at least {MIN_JWT_SECRET_BYTES} bytes"
        )


def ensure_jwt_secret(settings: Settings, secret_file: Path) -> str:
    """The JWT secret: configured, or (outside production) generated once and kept on disk.

    The MFA encryption key is settled here too (:func:`ensure_mfa_encryption_key`), next to the
    JWT secret file, because every entry point (app, CLI, workers) already calls this."""
    ensure_mfa_encryption_key(settings, secret_file.with_name(MFA_KEY_FILE_NAME))
    if settings.auth.jwt_secret:
        return settings.auth.jwt_secret
    if settings.is_production:  # _check_secrets already refused this; defence in depth
        raise ConfigError("configuration error: auth.jwt_secret is missing")
    settings.auth.jwt_secret = _kept_secret(secret_file)
    return settings.auth.jwt_secret


def _kept_secret(path: Path) -> str:
    """The secret kept in ``path`` (development), made and written there (mode 0600) when the
    file is missing or holds too short a value."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        secret = path.read_text(encoding="utf-8").strip()
        if len(secret.encode()) >= MIN_JWT_SECRET_BYTES:
            return secret
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secret)
    return secret


MFA_KEY_FILE_NAME = "mfa_encryption_key"


def ensure_mfa_encryption_key(settings: Settings, key_file: Path) -> str:
    """The MFA encryption key: configured; in the test environment a random one per process (no
    file); else (development) generated once and kept in ``key_file``. Losing it makes every
    enrolled TOTP factor unusable, so development keeps it like the JWT secret."""
    if settings.auth.mfa_encryption_key:
        return settings.auth.mfa_encryption_key
    if settings.is_production:  # _check_secrets already refused this; defence in depth
        raise ConfigError("configuration error: auth.mfa_encryption_key is missing")
    if settings.env == Environment.TEST:
        settings.auth.mfa_encryption_key = secrets.token_urlsafe(48)
        return settings.auth.mfa_encryption_key
    settings.auth.mfa_encryption_key = _kept_secret(key_file)
    return settings.auth.mfa_encryption_key
