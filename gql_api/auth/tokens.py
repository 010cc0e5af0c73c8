"""JWT access tokens and opaque refresh tokens.

Access tokens are short-lived JWTs with the algorithm pinned and every claim required; each
names its session (``sid``) so that revocation takes effect on the next request. Refresh tokens
are 256 random bits, stored only as their SHA-256, and never accepted as access tokens (they are
not JWTs and carry no ``type``).
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

import jwt

from gql_api.config import AuthSettings

ACCESS = "access"
REQUIRED_CLAIMS = ["sub", "sid", "role", "type", "iat", "exp", "iss", "aud", "jti"]


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    role: str
    expires_at: datetime


class InvalidToken(Exception):
    """The token is malformed, forged, expired or of the wrong kind."""


def issue_access_token(
    settings: AuthSettings, *, user_id: uuid.UUID, session_id: uuid.UUID, role: str
) -> tuple[str, int]:
    """A signed access token and its lifetime in seconds."""
    now = datetime.now(UTC)
    ttl = int(settings.access_token_ttl.total_seconds())
    claims = {
        "sub": str(user_id),
        "sid": str(session_id),
        "role": role,
        "type": ACCESS,
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + ttl,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "jti": secrets.token_hex(16),
    }
    assert settings.jwt_secret, "the JWT secret is set at start-up"
    token = jwt.encode(claims, settings.jwt_secret, algorithm=settings.jwt_algorithm)
    return token, ttl


def decode_access_token(settings: AuthSettings, token: str) -> AccessClaims:
    assert settings.jwt_secret, "the JWT secret is set at start-up"
    claims = _verified(
        token,
        settings.jwt_secret,
        settings.jwt_algorithm,
        settings.jwt_audience,
        settings.jwt_issuer,
    )
    # The cache below remembers a verification, not a verdict for ever: expiry is checked on
    # every use (pyjwt's rule: valid while now < exp).
    if claims.expires_at.timestamp() <= time.time():
        raise InvalidToken("Signature has expired")
    return claims


@lru_cache(maxsize=4096)
def _verified(token: str, secret: str, algorithm: str, audience: str, issuer: str) -> AccessClaims:
    """Signature and claims of a token, checked once: a client sends the same access token on
    every request until it expires, and verifying it again was a tenth of a small request's
    CPU. Only tokens that pass are remembered (a raised InvalidToken is not cached)."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[algorithm],
            audience=audience,
            issuer=issuer,
            options={"require": REQUIRED_CLAIMS},
        )
        if claims["type"] != ACCESS:
            raise InvalidToken("not an access token")
        return AccessClaims(
            user_id=uuid.UUID(claims["sub"]),
            session_id=uuid.UUID(claims["sid"]),
            role=str(claims["role"]),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
        raise InvalidToken(str(exc)) from None


def new_opaque_token() -> str:
    """256 bits of randomness, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
