"""Keys of the second factor, derived by HKDF from ``auth.mfa_encryption_key`` (never the JWT
secret): AES-GCM for TOTP secrets at rest, HMAC-SHA256 for recovery codes and challenge tokens.

A ciphertext is bound to its factor's user (associated data), so a secret copied onto another
user's row does not decrypt. Rotating the configured key makes enrolled factors unusable (users
enrol again) and recovery codes invalid; it does not expose anything.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import uuid
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gql_api.config import AuthSettings

_NONCE_BYTES = 12
_VERSION = "v1"


class SecretUnreadable(Exception):
    """The stored secret does not decrypt with the configured key (changed key, tampering)."""


@lru_cache(maxsize=8)
def _derive(key: str, purpose: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"gql_api mfa " + purpose
    ).derive(key.encode())


def _key(settings: AuthSettings, purpose: bytes) -> bytes:
    assert settings.mfa_encryption_key, "the MFA encryption key is set at start-up"
    return _derive(settings.mfa_encryption_key, purpose)


def encrypt_secret(settings: AuthSettings, *, user_id: uuid.UUID, secret: str) -> str:
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(_key(settings, b"totp secret")).encrypt(
        nonce, secret.encode("ascii"), user_id.bytes
    )
    return f"{_VERSION}:" + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def decrypt_secret(settings: AuthSettings, *, user_id: uuid.UUID, ciphertext: str) -> str:
    version, _, payload = ciphertext.partition(":")
    if version != _VERSION:
        raise SecretUnreadable(f"unknown ciphertext version {version!r}")
    raw = base64.urlsafe_b64decode(payload.encode("ascii"))
    try:
        plain = AESGCM(_key(settings, b"totp secret")).decrypt(
            raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], user_id.bytes
        )
    except InvalidTag:
        raise SecretUnreadable("the TOTP secret does not decrypt with the configured key") from None
    return plain.decode("ascii")


def keyed_hash(settings: AuthSettings, purpose: bytes, value: str) -> str:
    """HMAC-SHA256 hex of ``value``: what is stored of recovery codes and challenge tokens."""
    return hmac.new(_key(settings, purpose), value.encode(), hashlib.sha256).hexdigest()
