"""What the second factor checks: recovery codes (made, normalised, hashed) and TOTP codes
against a factor's encrypted secret."""

from __future__ import annotations

import logging
import secrets

from gql_api.config import Settings
from gql_api.models import UserMfaFactor

from .. import totp
from ..mfa_crypto import SecretUnreadable, decrypt_secret, keyed_hash

log = logging.getLogger(__name__)

RECOVERY_CODE_COUNT = 10
_RECOVERY = b"recovery code"

_RECOVERY_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


def new_recovery_code() -> str:
    """50 random bits as 10 base32 characters, shown as ``xxxxx-xxxxx``."""
    text = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
    return f"{text[:5]}-{text[5:]}"


def normalise_recovery_code(code: str) -> str:
    return code.strip().lower().replace("-", "").replace(" ", "")


def recovery_hash(settings: Settings, code: str) -> str:
    return keyed_hash(settings.auth, _RECOVERY, normalise_recovery_code(code))


def totp_step(settings: Settings, factor: UserMfaFactor, code: str) -> int | None:
    assert factor.secret_ciphertext is not None
    try:
        secret = decrypt_secret(
            settings.auth, user_id=factor.user_id, ciphertext=factor.secret_ciphertext
        )
    except SecretUnreadable:
        # auth.mfa_encryption_key changed since enrolment: no code can match; an admin can
        # reset the factor (resetUserMfa). Said once per attempt, never with the ciphertext.
        log.error("TOTP factor %s does not decrypt with the configured key", factor.id)
        return None
    return totp.matching_step(
        secret, code, now=settings.clock(), last_used_step=factor.last_used_step
    )
