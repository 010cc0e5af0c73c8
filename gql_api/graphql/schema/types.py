"""GraphQL object types for users, profiles and sessions.

Fields are listed explicitly from the SQLModel tables; ``password_hash`` and ``token_hash``
have no field here and a test proves no path through the schema reaches them. Each type's
``*_ROWS`` description says how its fields read from a row (see ``gql_api.graphql.engine.rows``);
``from_row`` and the planned executor both follow it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.scalars import JSON

from gql_api import models
from gql_api.graphql.engine.rows import Column, Computed, Relation, RowType, row_type
from gql_api.graphql.schema.errors import Forbidden
from gql_api.models import Role, UserStatus

if TYPE_CHECKING:
    from gql_api.graphql.schema.context import Context
    from gql_api.graphql.schema.mfa import MfaStatus


# The domain's enums, exposed as they are: one definition each (gql_api.models), made GraphQL
# enums here, where the schema is declared.
strawberry.enum(Role)
strawberry.enum(UserStatus)


def _text(value: Any) -> str:
    return str(value)


@strawberry.type
class Profile:
    bio: str | None
    avatar_url: str | None
    phone: str | None
    timezone: str | None
    locale: str | None
    preferences: JSON
    updated_at: datetime | None

    @classmethod
    def from_row(cls, row: models.UserProfile | Any) -> Profile:
        return cls(**PROFILE_ROWS.values(row))


PROFILE_ROWS = row_type(
    Profile,
    RowType(
        columns={
            "bio": Column("bio"),
            "avatar_url": Column("avatar_url"),
            "phone": Column("phone"),
            "timezone": Column("timezone"),
            "locale": Column("locale"),
            "preferences": Column("preferences", if_null={}),
            "updated_at": Column("updated_at"),
        }
    ),
)


def _is_current(row: Any, context: Context) -> bool:
    """The session the request is signed in with."""
    viewer = context.viewer
    return viewer is not None and row.id == viewer.session_id


@strawberry.type
class Session:
    id: strawberry.ID
    device_info: JSON | None
    ip_address: str | None
    user_agent: str | None
    created_at: datetime | None
    expires_at: datetime
    last_used_at: datetime | None
    current: bool

    @classmethod
    def from_row(cls, row: models.UserSession | Any, current_session_id: Any = None) -> Session:
        return cls(
            **SESSION_ROWS.values(row),
            current=current_session_id is not None and row.id == current_session_id,
        )


SESSION_ROWS = row_type(
    Session,
    RowType(
        columns={
            "id": Column("id", _text),
            "device_info": Column("device_info"),
            "ip_address": Column("ip_address", _text),
            "user_agent": Column("user_agent"),
            "created_at": Column("created_at"),
            "expires_at": Column("expires_at"),
            "last_used_at": Column("last_used_at"),
        },
        computed={"current": Computed(_is_current)},
    ),
)


def check_can_see_sessions(viewer: Any, user_id: Any) -> None:
    """A user's sessions are for the user itself and for admins."""
    if viewer.user.id != user_id and not viewer.is_admin:
        raise Forbidden("Only the user and admins can see its sessions")


async def _profiles_of(context: Context, users: Sequence[Any]) -> Sequence[Any]:
    return await context.loaders.profiles([user.id for user in users])


async def _sessions_of(context: Context, users: Sequence[Any]) -> Sequence[Any]:
    viewer = context.require_user()
    for user in users:
        check_can_see_sessions(viewer, user.id)
    return await context.loaders.sessions([user.id for user in users])


@strawberry.type
class User:
    id: strawberry.ID
    email: str
    first_name: str
    last_name: str
    role: Role
    status: UserStatus
    email_verified: bool
    email_verified_at: datetime | None
    password_changed_at: datetime | None
    last_login_at: datetime | None
    login_count: int
    created_at: datetime | None
    updated_at: datetime | None
    # The row's id as a UUID, for loaders; not part of the schema.
    uid: strawberry.Private[uuid.UUID]

    @classmethod
    def from_row(cls, row: models.User | Any) -> User:
        """From a ``users`` ORM row or a plain row of its public columns."""
        assert row.id is not None
        return cls(uid=row.id, **USER_ROWS.values(row))

    @strawberry.field
    async def profile(self, info: strawberry.Info[Context, None]) -> Profile | None:
        row = await info.context.loaders.profile_by_user_id.load(self.uid)
        return Profile.from_row(row) if row is not None else None

    @strawberry.field(description="Active sessions; visible to the user itself and admins.")
    async def sessions(self, info: strawberry.Info[Context, None]) -> list[Session]:
        viewer = info.context.require_user()
        check_can_see_sessions(viewer, self.uid)
        rows = await info.context.loaders.sessions_by_user_id.load(self.uid)
        return [Session.from_row(r, viewer.session_id) for r in rows]

    @strawberry.field(description="Second factors; visible to the user itself and admins.")
    async def mfa(
        self, info: strawberry.Info[Context, None]
    ) -> Annotated[MfaStatus, strawberry.lazy("gql_api.graphql.schema.mfa")]:
        from gql_api.graphql.schema.mfa import resolve_user_mfa

        return await resolve_user_mfa(info, self.uid)


USER_ROWS = row_type(
    User,
    RowType(
        columns={
            "id": Column("id", _text),
            "email": Column("email"),
            "first_name": Column("first_name"),
            "last_name": Column("last_name"),
            "role": Column("role", Role),
            "status": Column("status", UserStatus),
            "email_verified": Column("email_verified"),
            "email_verified_at": Column("email_verified_at"),
            "password_changed_at": Column("password_changed_at"),
            "last_login_at": Column("last_login_at"),
            "login_count": Column("login_count"),
            "created_at": Column("created_at"),
            "updated_at": Column("updated_at"),
        },
        relations={"profile": Relation(_profiles_of), "sessions": Relation(_sessions_of)},
    ),
)
