"""RFC 6238 TOTP through pyotp: 30 s steps, 6 digits, SHA-1 (what authenticator apps use),
accepted one step either side of now, each step at most once per factor; and the enrolment's
``otpauth://`` URI and its QR code (SVG, by segno).
"""

from __future__ import annotations

import hmac
import io
from datetime import datetime

import pyotp
import segno

DIGITS = 6
INTERVAL_S = 30
WINDOW_STEPS = 1  # clock skew tolerated, in steps either side


def new_secret() -> str:
    """160 random bits in base32, the size RFC 4226 recommends for SHA-1."""
    return pyotp.random_base32(length=32)


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL_S)


def code_at(secret: str, now: datetime) -> str:
    return _totp(secret).at(now)


def matching_step(
    secret: str, code: str, *, now: datetime, last_used_step: int | None
) -> int | None:
    """The time step whose code is ``code``, within the window and after ``last_used_step``
    (a code is accepted once: replay refused), or None.

    Every step of the window is computed and compared in constant time, whatever matches, so a
    right code costs what a wrong one does.
    """
    totp = _totp(secret)
    current = int(totp.timecode(now))
    found: int | None = None
    for step in range(current - WINDOW_STEPS, current + WINDOW_STEPS + 1):
        expected = totp.generate_otp(step)
        if hmac.compare_digest(expected.encode(), code.encode()) and found is None:
            found = step
    if found is None or (last_used_step is not None and found <= last_used_step):
        return None
    return found


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    return _totp(secret).provisioning_uri(name=account, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The URI as an SVG QR code (a standalone document, no XML declaration)."""
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="svg", xmldecl=False, scale=4)
    return buffer.getvalue().decode("utf-8")
