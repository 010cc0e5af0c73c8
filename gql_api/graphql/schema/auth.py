"""Authentication mutations: register, login, refresh, logout, sessions, passwords, e-mail
(their inputs and payloads: ``auth_types``).

Resolvers validate and clean their arguments (``gql_api.validation``; a failure is
BAD_USER_INPUT with ``fields``), then call the flows in ``gql_api.auth``. They hold no SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import strawberry

from gql_api import validation
from gql_api.auth import accounts, rate_limits, recovery, revocation
from gql_api.auth import sessions as session_policy
from gql_api.graphql.schema.auth_types import AuthPayload, LoginInput, LoginPayload, RegisterInput
from gql_api.graphql.schema.context import Context
from gql_api.graphql.schema.errors import BadUserInput
from gql_api.graphql.schema.ids import parse_uuid
from gql_api.graphql.schema.types import User

Info = strawberry.Info[Context, None]


def _clean(checks: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    try:
        return validation.collect(checks)
    except validation.InvalidInput as exc:
        raise BadUserInput("Invalid input", fields=exc.fields) from None


def _secret(value: str, *, max_length: int = validation.PASSWORD_MAX_LENGTH) -> Callable[[], str]:
    """A password as typed for checking: bounded and NUL-free, no other rule (old passwords may
    predate today's rules)."""
    return lambda: validation.plain_text(value, max_length=max_length)


@strawberry.type
class AuthMutation:
    @strawberry.mutation(description="Create an account and sign in.")
    async def register(self, info: Info, input: RegisterInput) -> AuthPayload:
        ctx = info.context
        data = _clean(
            {
                "email": lambda: validation.email(input.email),
                "password": lambda: validation.password(input.password),
                "firstName": lambda: validation.name(input.first_name),
                "lastName": lambda: validation.name(input.last_name),
            }
        )
        issued = await accounts.register(
            ctx.db,
            ctx.settings.auth,
            email=data["email"],
            password=data["password"],
            first_name=data["firstName"],
            last_name=data["lastName"],
            meta=ctx.request_meta(),
        )
        return AuthPayload.from_issued(issued, ctx)

    @strawberry.mutation(
        description="Sign in with e-mail and password; starts a session, or for an account "
        "with a second factor answers `mfaRequired` (then `verifyMfa`)."
    )
    async def login(self, info: Info, input: LoginInput) -> LoginPayload:
        ctx = info.context
        data = _clean(
            {
                "email": lambda: validation.login_email(input.email),
                "password": _secret(input.password),
                "deviceInfo": lambda: validation.device_info(input.device_info),
            }
        )
        result = await accounts.login(
            ctx.db,
            ctx.settings.auth,
            email=data["email"],
            password=data["password"],
            device_info=data["deviceInfo"],
            meta=ctx.request_meta(),
            clock=ctx.settings.clock,
        )
        return LoginPayload.from_result(result, ctx)

    @strawberry.mutation(
        description="Exchange a refresh token for new tokens; the old refresh token is rotated."
    )
    async def refresh_token(self, info: Info, refresh_token: str) -> AuthPayload:
        ctx = info.context
        data = _clean({"refreshToken": lambda: validation.token(refresh_token)})
        issued = await session_policy.refresh(
            ctx.db, ctx.settings.auth, refresh_token=data["refreshToken"], meta=ctx.request_meta()
        )
        return AuthPayload.from_issued(issued, ctx)

    @strawberry.mutation(description="End the current session.")
    async def logout(self, info: Info) -> bool:
        viewer = info.context.require_user()
        return await revocation.logout(
            info.context.db, viewer=viewer, meta=info.context.request_meta()
        )

    @strawberry.mutation(description="End every session of the viewer; returns how many.")
    async def logout_all(self, info: Info, keep_current: bool | None = False) -> int:
        viewer = info.context.require_user()
        return await revocation.logout_all(
            info.context.db,
            viewer=viewer,
            keep_current=bool(keep_current),
            meta=info.context.request_meta(),
        )

    @strawberry.mutation(description="End one session: your own, or anyone's for admins.")
    async def revoke_session(self, info: Info, id: strawberry.ID) -> bool:
        viewer = info.context.require_user()
        return await revocation.revoke_session(
            info.context.db,
            viewer=viewer,
            session_id=parse_uuid(id),
            meta=info.context.request_meta(),
        )

    @strawberry.mutation(description="Admin: end every session of a user; returns how many.")
    async def revoke_user_sessions(self, info: Info, user_id: strawberry.ID) -> int:
        viewer = info.context.require_admin()
        return await revocation.revoke_user_sessions(
            info.context.db,
            viewer=viewer,
            user_id=parse_uuid(user_id, "userId"),
            meta=info.context.request_meta(),
        )

    @strawberry.mutation(
        description="Admin: forget failed sign-ins of an e-mail and/or an address, lifting "
        "their rate limits; returns how many attempts were removed."
    )
    async def clear_login_attempts(
        self, info: Info, email: str | None = None, ip_address: str | None = None
    ) -> int:
        viewer = info.context.require_admin()
        checks: dict[str, Callable[[], Any]] = {}
        if email is not None:
            checks["email"] = lambda: validation.login_email(email)
        if ip_address is not None:
            checks["ipAddress"] = lambda: validation.ip_address(ip_address)
        if not checks:
            raise BadUserInput(
                "Give an email, an ipAddress or both",
                fields={"email": "email or ipAddress is required"},
            )
        data = _clean(checks)
        return await revocation.clear_login_attempts(
            info.context.db,
            viewer=viewer,
            email=data.get("email"),
            ip_address=data.get("ipAddress"),
            meta=info.context.request_meta(),
        )

    @strawberry.mutation(
        description="Change the password. Every session ends, this one included (its tokens "
        "stop working); this device continues on a new session with the tokens returned."
    )
    async def change_password(
        self, info: Info, current_password: str, new_password: str
    ) -> AuthPayload:
        ctx = info.context
        viewer = ctx.require_user()
        data = _clean(
            {
                "currentPassword": _secret(current_password),
                "newPassword": lambda: validation.password(new_password),
            }
        )
        issued = await accounts.change_password(
            ctx.db,
            ctx.settings.auth,
            viewer=viewer,
            current_password=data["currentPassword"],
            new_password=data["newPassword"],
            meta=ctx.request_meta(),
        )
        return AuthPayload.from_issued(issued, ctx)

    @strawberry.mutation(
        description="Mail a link that confirms the viewer's e-mail address. RATE_LIMITED when "
        "asked too often."
    )
    async def request_email_verification(self, info: Info) -> bool:
        ctx = info.context
        viewer = ctx.require_user()
        return await recovery.request_email_verification(
            ctx.db, ctx.settings, ctx.mailer, viewer=viewer, meta=ctx.request_meta()
        )

    @strawberry.mutation(description="Confirm an e-mail address with the token from the mail.")
    async def verify_email(self, info: Info, token: str) -> User:
        data = _clean({"token": lambda: validation.token(token)})
        user = await recovery.verify_email(
            info.context.db, token=data["token"], meta=info.context.request_meta()
        )
        return cast(User, user)  # a row: the type's fields read its columns

    @strawberry.mutation(
        description="Mail a password-reset link if an account has this e-mail. Always true: "
        "the answer does not tell whether the account exists (nor whether the address had "
        "its share of mails already). RATE_LIMITED when this client asked too often."
    )
    async def request_password_reset(self, info: Info, email: str) -> bool:
        ctx = info.context
        data = _clean({"email": lambda: validation.login_email(email)})
        # About the caller only, so it may answer RATE_LIMITED; the recipient's limit is
        # applied where the mail is sent, and answers nothing.
        await rate_limits.admit_mail_request(ctx.db, ctx.settings.auth, ip_address=ctx.client_ip)
        args = (ctx.db, ctx.settings, ctx.mailer)
        kwargs = {"email": data["email"], "meta": ctx.request_meta()}
        if ctx.background_tasks is not None:
            # After the response, so that its timing cannot tell whether the account exists.
            ctx.background_tasks.add_task(recovery.send_password_reset, *args, **kwargs)
        else:
            await recovery.send_password_reset(*args, **kwargs)
        return True

    @strawberry.mutation(description="Set a new password with the token from the reset mail.")
    async def reset_password(self, info: Info, token: str, new_password: str) -> bool:
        ctx = info.context
        data = _clean(
            {
                "token": lambda: validation.token(token),
                "newPassword": lambda: validation.password(new_password),
            }
        )
        await recovery.reset_password(
            ctx.db,
            ctx.settings,
            token=data["token"],
            new_password=data["newPassword"],
            meta=ctx.request_meta(),
        )
        return True
