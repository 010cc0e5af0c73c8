"""GraphQL object types for users, profiles and sessions.

Fields are listed explicitly from the SQLModel tables; ``password_hash`` and ``token_hash``
have no field here and a test proves no path through the schema reaches them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

import strawberry
from strawberry.scalars import JSON

from gql_api import models
from gql_api.graphql.errors import Forbidden

if TYPE_CHECKING:
    from gql_api.graphql.context import Context


@strawberry.enum
class Role(Enum):
    USER = "user"
    ADMIN = "admin"


@strawberry.enum
class UserStatus(Enum):
    ACTIVE = "active"
    INACTIVE = "inactive"


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
    def from_row(cls, row: models.UserProfile) -> Profile:
        return cls(
            bio=row.bio,
            avatar_url=row.avatar_url,
            phone=row.phone,
            timezone=row.timezone,
            locale=row.locale,
            preferences=JSON(row.preferences or {}),
            updated_at=row.updated_at,
        )


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
    def from_row(cls, row: models.UserSession, current_session_id: Any = None) -> Session:
        return cls(
            id=strawberry.ID(str(row.id)),
            device_info=JSON(row.device_info) if row.device_info is not None else None,
            ip_address=str(row.ip_address) if row.ip_address is not None else None,
            user_agent=row.user_agent,
            created_at=row.created_at,
            expires_at=row.expires_at,
            last_used_at=row.last_used_at,
            current=current_session_id is not None and row.id == current_session_id,
        )


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
        """From a ``users`` ORM row or a Core row of its public columns."""
        assert row.id is not None
        return cls(
            id=strawberry.ID(str(row.id)),
            uid=row.id,
            email=row.email,
            first_name=row.first_name,
            last_name=row.last_name,
            role=Role(row.role),
            status=UserStatus(row.status),
            email_verified=row.email_verified,
            email_verified_at=row.email_verified_at,
            password_changed_at=row.password_changed_at,
            last_login_at=row.last_login_at,
            login_count=row.login_count,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    @strawberry.field
    async def profile(self, info: strawberry.Info[Context, None]) -> Profile | None:
        row = await info.context.loaders.profile_by_user_id.load(self.uid)
        return Profile.from_row(row) if row is not None else None

    @strawberry.field(description="Active sessions; visible to the user itself and admins.")
    async def sessions(self, info: strawberry.Info[Context, None]) -> list[Session]:
        viewer = info.context.require_user()
        if viewer.user.id != self.uid and not viewer.is_admin:
            raise Forbidden("Only the user and admins can see its sessions")
        rows = await info.context.loaders.sessions_by_user_id.load(self.uid)
        return [Session.from_row(r, viewer.session_id) for r in rows]
