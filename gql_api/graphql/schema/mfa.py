"""Second factor in GraphQL: enrolment, the login challenge's second step, management, and the
admin reset. Resolvers validate, then call ``gql_api.auth.mfa``; they hold no SQL.

Flow: ``login`` answers ``mfaRequired { challengeToken methods }`` (no tokens) for an account
with a factor; ``verifyMfa`` completes it with a TOTP code or a recovery code.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import Any

import strawberry

from gql_api import validation
from gql_api.auth import mfa
from gql_api.graphql.schema.auth import Info, _clean, _secret
from gql_api.graphql.schema.auth_types import AuthPayload
from gql_api.graphql.schema.errors import BadUserInput
from gql_api.graphql.schema.ids import parse_uuid

_TOTP_CODE = re.compile(r"^[0-9]{6}$")
RECOVERY_CODE_MAX_LENGTH = 32


def _totp_code(value: str) -> Callable[[], str]:
    def check() -> str:
        cleaned = validation.plain_text(value, max_length=16).replace(" ", "")
        if not _TOTP_CODE.match(cleaned):
            raise validation.InvalidValue("must be 6 digits")
        return cleaned

    return check


def _recovery_code(value: str) -> Callable[[], str]:
    def check() -> str:
        cleaned = validation.plain_text(value, max_length=RECOVERY_CODE_MAX_LENGTH).strip()
        if not cleaned or not cleaned.isascii():
            raise validation.InvalidValue("is not a recovery code")
        return cleaned

    return check


@strawberry.enum
class MfaMethod(Enum):
    TOTP = "totp"
    RECOVERY_CODE = "recovery_code"


@strawberry.enum
class MfaFactorKind(Enum):
    TOTP = "totp"
    WEBAUTHN = "webauthn"


@strawberry.type(description="The second step of a sign-in: no tokens yet.")
class MfaChallenge:
    challenge_token: str = strawberry.field(
        description="Single use; send to `verifyMfa` with a code before `expiresAt`."
    )
    methods: list[MfaMethod]
    expires_at: datetime

    @classmethod
    def from_challenge(cls, challenge: mfa.Challenge) -> MfaChallenge:
        return cls(
            challenge_token=challenge.token,
            methods=[MfaMethod(m) for m in challenge.methods],
            expires_at=challenge.expires_at,
        )


@strawberry.type(description="Scan `qrCodeSvg` or type `secret`; shown only now.")
class TotpEnrollment:
    factor_id: strawberry.ID
    secret: str
    otpauth_uri: str
    qr_code_svg: str


@strawberry.type
class MfaFactor:
    id: strawberry.ID
    kind: MfaFactorKind
    created_at: datetime | None
    last_used_at: datetime | None


@strawberry.type
class MfaStatus:
    enabled: bool
    factors: list[MfaFactor]
    recovery_codes_left: int


async def resolve_user_mfa(info: Info, user_id: Any) -> MfaStatus:
    """The second-factor state of a user: for the user itself and admins."""
    from gql_api.graphql.schema.types import check_can_see_sessions

    viewer = info.context.require_user()
    check_can_see_sessions(viewer, user_id)
    state = await mfa.state(info.context.db, user_id=user_id)
    return MfaStatus(
        enabled=state.enabled,
        factors=[
            MfaFactor(
                id=strawberry.ID(str(f.id)),
                kind=MfaFactorKind(f.kind),
                created_at=f.created_at,
                last_used_at=f.last_used_at,
            )
            for f in state.factors
        ],
        recovery_codes_left=state.recovery_codes_left,
    )


def _password(password: str | None) -> dict[str, Any]:
    if password is None:
        return {"password": None}
    return _clean({"password": _secret(password)})


@strawberry.type
class MfaMutation:
    @strawberry.mutation(
        description="Start enrolling a TOTP authenticator (replaces a pending enrolment). "
        "Needs a sign-in within the last minutes or the password; FORBIDDEN with reason "
        "REAUTHENTICATION_REQUIRED otherwise."
    )
    async def start_totp_enrollment(
        self, info: Info, password: str | None = None
    ) -> TotpEnrollment:
        ctx = info.context
        viewer = ctx.require_user()
        data = _password(password)
        enrollment = await mfa.start_totp_enrollment(
            ctx.db, ctx.settings, viewer=viewer, password=data["password"], meta=ctx.request_meta()
        )
        return TotpEnrollment(
            factor_id=strawberry.ID(str(enrollment.factor_id)),
            secret=enrollment.secret,
            otpauth_uri=enrollment.uri,
            qr_code_svg=enrollment.qr_svg,
        )

    @strawberry.mutation(
        description="Activate the pending TOTP factor with a code from the app; returns the "
        "recovery codes, shown only now."
    )
    async def confirm_totp_enrollment(
        self, info: Info, code: str, password: str | None = None
    ) -> list[str]:
        ctx = info.context
        viewer = ctx.require_user()
        data = {**_clean({"code": _totp_code(code)}), **_password(password)}
        return await mfa.confirm_totp_enrollment(
            ctx.db,
            ctx.settings,
            viewer=viewer,
            code=data["code"],
            password=data["password"],
            meta=ctx.request_meta(),
        )

    @strawberry.mutation(
        description="Complete a sign-in that answered `mfaRequired`, with a TOTP `code` or a "
        "`recoveryCode` (one of them); the session starts now."
    )
    async def verify_mfa(
        self,
        info: Info,
        challenge_token: str,
        code: str | None = None,
        recovery_code: str | None = None,
    ) -> AuthPayload:
        ctx = info.context
        if (code is None) == (recovery_code is None):
            raise BadUserInput(
                "Give either a code or a recoveryCode",
                fields={"code": "give code or recoveryCode, not both"},
            )
        checks: dict[str, Callable[[], Any]] = {
            "challengeToken": lambda: validation.token(challenge_token)
        }
        if code is not None:
            checks["code"] = _totp_code(code)
        if recovery_code is not None:
            checks["recoveryCode"] = _recovery_code(recovery_code)
        data = _clean(checks)
        issued = await mfa.verify(
            ctx.db,
            ctx.settings,
            challenge_token=data["challengeToken"],
            code=data.get("code"),
            recovery_code=data.get("recoveryCode"),
            meta=ctx.request_meta(),
        )
        return AuthPayload.from_issued(issued, ctx)

    @strawberry.mutation(
        description="Replace the recovery codes (the old ones stop working) and end every "
        "other session. Needs a recent sign-in or the password."
    )
    async def regenerate_recovery_codes(self, info: Info, password: str | None = None) -> list[str]:
        ctx = info.context
        viewer = ctx.require_user()
        data = _password(password)
        return await mfa.regenerate_recovery_codes(
            ctx.db, ctx.settings, viewer=viewer, password=data["password"], meta=ctx.request_meta()
        )

    @strawberry.mutation(
        description="Remove one of your factors (needs the password). Removing the last one "
        "drops the recovery codes and ends every other session."
    )
    async def remove_mfa_factor(self, info: Info, id: strawberry.ID, password: str) -> bool:
        ctx = info.context
        viewer = ctx.require_user()
        factor_id = parse_uuid(id)
        data = _clean({"password": _secret(password)})
        return await mfa.remove_factor(
            ctx.db,
            ctx.settings,
            viewer=viewer,
            factor_id=factor_id,
            password=data["password"],
            meta=ctx.request_meta(),
        )

    @strawberry.mutation(
        description="Admin: remove every second factor and recovery code of a user and end "
        "its sessions; returns how many factors were removed."
    )
    async def reset_user_mfa(self, info: Info, user_id: strawberry.ID) -> int:
        from gql_api.users.admin import reset_user_mfa

        ctx = info.context
        viewer = ctx.require_admin()
        return await reset_user_mfa(
            ctx.db, actor=viewer, user_id=parse_uuid(user_id, "userId"), meta=ctx.request_meta()
        )
