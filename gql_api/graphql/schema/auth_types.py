"""The inputs and payloads of the authentication mutations (``auth``, and ``mfa``'s
``verifyMfa``, which answers an :class:`AuthPayload` too)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, cast

import strawberry
from strawberry.scalars import JSON

from gql_api.auth import mfa
from gql_api.auth.sessions import IssuedTokens
from gql_api.graphql.schema.types import Session, User

if TYPE_CHECKING:
    from gql_api.graphql.schema.context import Context
    from gql_api.graphql.schema.mfa import MfaChallenge


@strawberry.input
class RegisterInput:
    email: str
    password: str
    first_name: str
    last_name: str


@strawberry.input
class LoginInput:
    email: str
    password: str
    device_info: JSON | None = strawberry.field(
        default=None, description="Free-form description of the device (a JSON object)."
    )


@strawberry.type
class AuthPayload:
    access_token: str = strawberry.field(description="Send as `Authorization: Bearer <token>`.")
    refresh_token: str = strawberry.field(
        description="Opaque; exchange with `refreshToken` before the access token expires."
    )
    token_type: str
    expires_in: int = strawberry.field(description="Seconds until the access token expires.")
    user: User
    session: Session

    @classmethod
    def from_issued(cls, issued: IssuedTokens, context: Context) -> AuthPayload:
        """The payload of a sign-in; its session is this request's ``current`` one."""
        context.started_session_id = issued.session.id
        return cls(
            access_token=issued.access_token,
            refresh_token=issued.refresh_token,
            token_type=issued.token_type,
            expires_in=issued.expires_in,
            user=cast(User, issued.user),  # rows: the types' fields read their columns
            session=cast(Session, issued.session),
        )


@strawberry.type(
    description="What `login` answers: the tokens, or for an account with a second factor no "
    "tokens but `mfaRequired` (complete it with `verifyMfa`). The token fields are those of "
    "AuthPayload, so documents written for accounts without a factor keep working."
)
class LoginPayload:
    access_token: str | None = strawberry.field(
        description="Send as `Authorization: Bearer <token>`; null when `mfaRequired` is set."
    )
    refresh_token: str | None
    token_type: str | None
    expires_in: int | None
    user: User | None
    session: Session | None
    mfa_required: Annotated[MfaChallenge, strawberry.lazy("gql_api.graphql.schema.mfa")] | None = (
        strawberry.field(description="Set when a second factor must complete the sign-in.")
    )

    @classmethod
    def from_result(cls, result: IssuedTokens | mfa.Challenge, context: Context) -> LoginPayload:
        if isinstance(result, mfa.Challenge):
            from gql_api.graphql.schema.mfa import MfaChallenge

            return cls(
                access_token=None,
                refresh_token=None,
                token_type=None,
                expires_in=None,
                user=None,
                session=None,
                mfa_required=MfaChallenge.from_challenge(result),
            )
        tokens = AuthPayload.from_issued(result, context)
        return cls(
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            token_type=tokens.token_type,
            expires_in=tokens.expires_in,
            user=tokens.user,
            session=tokens.session,
            mfa_required=None,
        )
