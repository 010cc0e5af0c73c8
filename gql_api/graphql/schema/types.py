"""GraphQL object types for users, profiles and sessions, whose values are database rows.

Fields are listed explicitly from the SQLModel tables; ``password_hash`` and ``token_hash``
have no field here and a test proves no path through the schema reaches them. Every resolver
of these types returns rows (a direct read's, or an ORM instance): a field without a resolver
reads the row's column of its name, under either executor. ``row_type`` registers each type
for the planned executor (``gql_api.graphql.engine.rows``), which compiles the same fields into
readers, and says which fields are relations it loads for a whole level at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.scalars import JSON

from gql_api.graphql.engine.rows import Relation, row_type
from gql_api.graphql.schema.errors import Forbidden
from gql_api.models import Role, UserProfile, UserSession, UserStatus
from gql_api.repositories.json_text import JsonField

if TYPE_CHECKING:
    from gql_api.graphql.schema.context import Context
    from gql_api.graphql.schema.mfa import MfaStatus


# The domain's enums, exposed as they are: one definition each (gql_api.models), made GraphQL
# enums here, where the schema is declared.
strawberry.enum(Role)
strawberry.enum(UserStatus)


@strawberry.type
class Profile:
    bio: str | None
    avatar_url: str | None
    phone: str | None
    timezone: str | None
    locale: str | None
    preferences: JSON = strawberry.field(resolver=lambda root: _preferences(root))
    updated_at: datetime | None


def _preferences(root: Any) -> Any:
    """A profile stored without preferences has none: ``{}``. (Declared after the class, whose
    field it resolves; the lambda looks it up when called.)"""
    value = root.preferences
    return {} if value is None else value


row_type(Profile)


def _is_current(root: strawberry.Parent[Any], info: strawberry.Info[Context, None]) -> bool:
    """The session the request is signed in with (or, in a sign-in's payload, started)."""
    return info.context.is_current_session(root.id)


@strawberry.type
class Session:
    id: strawberry.ID
    device_info: JSON | None
    ip_address: str | None
    user_agent: str | None
    created_at: datetime | None
    expires_at: datetime
    last_used_at: datetime | None
    current: bool = strawberry.field(resolver=_is_current)


row_type(Session)


def check_can_see_sessions(viewer: Any, user_id: Any) -> None:
    """A user's sessions are for the user itself and for admins."""
    if viewer.user.id != user_id and not viewer.is_admin:
        raise Forbidden("Only the user and admins can see its sessions")


async def _profiles_of(
    context: Context, users: Sequence[Any], columns: frozenset[str] | None
) -> Sequence[Any]:
    return await context.loaders.profiles([user.id for user in users], columns)


def _session_owners(context: Context, users: Sequence[Any]) -> list[Any]:
    """The users' ids, once the viewer may see each one's sessions."""
    viewer = context.require_user()
    ids = [user.id for user in users]
    if not viewer.is_admin:  # an admin sees every user's: asked once, not per user
        for user_id in ids:
            check_can_see_sessions(viewer, user_id)
    return ids


async def _sessions_of(
    context: Context, users: Sequence[Any], columns: frozenset[str] | None
) -> Sequence[Any]:
    return await context.loaders.sessions(_session_owners(context, users), columns)


async def _profiles_json_of(
    context: Context, users: Sequence[Any], fields: tuple[JsonField, ...]
) -> Sequence[Any]:
    return await context.loaders.profiles_json([user.id for user in users], fields)


async def _sessions_json_of(
    context: Context, users: Sequence[Any], fields: tuple[JsonField, ...]
) -> Sequence[Any]:
    return await context.loaders.sessions_json(_session_owners(context, users), fields)


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

    @strawberry.field
    async def profile(
        self, root: strawberry.Parent[Any], info: strawberry.Info[Context, None]
    ) -> Profile | None:
        row = await info.context.loaders.profile_by_user_id.load(root.id)
        return row  # type: ignore[no-any-return]

    @strawberry.field(description="Active sessions; visible to the user itself and admins.")
    async def sessions(
        self, root: strawberry.Parent[Any], info: strawberry.Info[Context, None]
    ) -> list[Session]:
        check_can_see_sessions(info.context.require_user(), root.id)
        rows = await info.context.loaders.sessions_by_user_id.load(root.id)
        return rows  # type: ignore[no-any-return]

    @strawberry.field(description="Second factors; visible to the user itself and admins.")
    async def mfa(
        self, root: strawberry.Parent[Any], info: strawberry.Info[Context, None]
    ) -> Annotated[MfaStatus, strawberry.lazy("gql_api.graphql.schema.mfa")]:
        from gql_api.graphql.schema.mfa import resolve_user_mfa

        return await resolve_user_mfa(info, root.id)


# The planned executor loads a level's profiles and sessions with one call each of the batch
# functions the DataLoaders wrap (Loaders.profiles/sessions: one statement per relation and
# level); the resolvers above load them one user at a time through the DataLoaders. Not through
# the DataLoader objects for a level that is already one batch: aiodataloader's futures cost 7%
# of a page's CPU, and its batch runs in a task of its own, which the request's cancellation
# (a null that reaches ``data``) does not stop. Each relation also names its table and a loader
# of its rows as JSON text, which the planned executor takes for a selection of columns only.
row_type(
    User,
    relations={
        "profile": Relation(_profiles_of, _profiles_json_of, UserProfile),
        "sessions": Relation(_sessions_of, _sessions_json_of, UserSession),
    },
)
