"""A recent password check, required before a change to the second factor."""

from __future__ import annotations

from gql_api.config import Settings
from gql_api.db import Database
from gql_api.errors import BadUserInput, Forbidden
from gql_api.repositories import login_attempts
from gql_api.repositories import sessions as session_repo

from .. import rate_limits
from ..current import Viewer, viewer_password_hash
from ..events import RequestMeta
from ..passwords import verify_password


async def require_fresh_auth(
    db: Database, settings: Settings, *, viewer: Viewer, password: str | None, meta: RequestMeta
) -> None:
    """Sensitive changes need the password in the call, or a session that signed in within
    ``auth.mfa_reauth_window``. A wrong password counts against the account's login limit."""
    user = viewer.user
    if password is not None:
        stored_hash = await viewer_password_hash(db, viewer)
        attempt_id = await rate_limits.admit_login(
            db, settings.auth, email=user.email, ip_address=meta.ip_address
        )
        ok = await verify_password(password, stored_hash)
        async with db.transaction() as session:
            if ok:
                await login_attempts.mark_succeeded(session, attempt_id=attempt_id)
            else:
                await login_attempts.mark_failed(session, attempt_id=attempt_id)
        if not ok:
            raise BadUserInput("The password is incorrect", fields={"password": "is incorrect"})
        return
    async with db.session() as session:
        row = await session_repo.get(session, session_id=viewer.session_id)
    signed_in = row.created_at if row is not None else None
    if signed_in is None or settings.clock() - signed_in > settings.auth.mfa_reauth_window:
        raise Forbidden(
            "Sign in again or give the password: this change needs a recent password check",
            reason="REAUTHENTICATION_REQUIRED",
        )
