"""Second factor flows: TOTP enrolment, the login challenge and its verification, recovery
codes, removal. Inputs arrive validated; each change commits with its audit entry.

Login with a factor
-------------------
``accounts.login`` checks the password and, when the user has a confirmed factor, creates no
session but a challenge (:func:`open_challenge`): a random token stored as a keyed hash, valid
``auth.mfa_challenge_ttl``, remembering the first step's device, address and user agent.
:func:`verify` takes the token with a TOTP code or a recovery code; the session is created only
then, with what the challenge remembered. A challenge is single use, and
``auth.mfa_max_attempts_per_challenge`` wrong codes end it; wrong codes also count per account
(``login_attempts`` kind ``mfa``), so that opening new challenges does not buy more guesses.

Enrolling and regenerating recovery codes need a recent password check: the session must have
been created (by a login, which checked the password) within ``auth.mfa_reauth_window``, or the
call must carry the password.

A code is checked against every step of the window and a recovery code against every unused
code of the user, whatever matches, so a wrong answer costs what a right one does.

    codes.py       recovery codes and TOTP codes: made, normalised, hashed, checked
    reauth.py      the recent password check that changes to a factor need
    factors.py     enrolment, state, new recovery codes, removal
    challenge.py   the login challenge and its verification
"""

from .challenge import Challenge, open_challenge, verify
from .codes import RECOVERY_CODE_COUNT, new_recovery_code
from .factors import (
    Enrollment,
    MfaState,
    confirm_totp_enrollment,
    regenerate_recovery_codes,
    remove_factor,
    start_totp_enrollment,
    state,
)
from .reauth import require_fresh_auth

__all__ = [
    "RECOVERY_CODE_COUNT",
    "Challenge",
    "Enrollment",
    "MfaState",
    "confirm_totp_enrollment",
    "new_recovery_code",
    "open_challenge",
    "regenerate_recovery_codes",
    "remove_factor",
    "require_fresh_auth",
    "start_totp_enrollment",
    "state",
    "verify",
]
