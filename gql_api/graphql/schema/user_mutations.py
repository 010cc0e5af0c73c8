"""User mutations: ``updateMe`` for everyone signed in; ``createUser``, ``updateUser`` and
``deleteUser`` for admins. Resolvers validate and translate; ``gql_api.users`` does the work.

Partial updates: an omitted field is left alone. An explicit null clears a profile field
(``preferences: null`` resets it to ``{}``) and is BAD_USER_INPUT for a field that cannot be
empty (names, role, status, emailVerified).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON

from gql_api import validation
from gql_api.graphql.schema.context import Context
from gql_api.graphql.schema.errors import BadUserInput
from gql_api.graphql.schema.ids import parse_uuid
from gql_api.graphql.schema.types import Role, User, UserStatus
from gql_api.models import Role as RoleValue
from gql_api.models import UserStatus as StatusValue
from gql_api.users import admin, profile

_PROFILE_RULES: dict[str, tuple[str, Callable[[Any], Any]]] = {
    # python field: (GraphQL name, check of a non-null value)
    "bio": ("bio", validation.bio),
    "avatar_url": ("avatarUrl", validation.avatar_url),
    "phone": ("phone", validation.phone),
    "timezone": ("timezone", validation.timezone),
    "locale": ("locale", validation.locale),
    "preferences": ("preferences", validation.preferences),
}


@strawberry.input(description="Profile fields to change; omitted fields stay as they are.")
class ProfileInput:
    bio: str | None = strawberry.UNSET
    avatar_url: str | None = strawberry.UNSET
    phone: str | None = strawberry.UNSET
    timezone: str | None = strawberry.UNSET
    locale: str | None = strawberry.UNSET
    preferences: JSON | None = strawberry.UNSET


@strawberry.input
class UpdateMeInput:
    first_name: str | None = strawberry.UNSET
    last_name: str | None = strawberry.UNSET
    profile: ProfileInput | None = strawberry.UNSET


@strawberry.input
class CreateUserInput:
    email: str
    password: str
    first_name: str
    last_name: str
    role: Role = Role.USER
    status: UserStatus = UserStatus.ACTIVE
    email_verified: bool = False
    profile: ProfileInput | None = None


@strawberry.input(description="Fields to change; omitted fields stay as they are.")
class UpdateUserInput:
    first_name: str | None = strawberry.UNSET
    last_name: str | None = strawberry.UNSET
    role: Role | None = strawberry.UNSET
    status: UserStatus | None = strawberry.UNSET
    email_verified: bool | None = strawberry.UNSET


@strawberry.type
class DeleteUserPayload:
    deleted_user_id: strawberry.ID


def _given(value: Any) -> bool:
    return value is not strawberry.UNSET


class _Checks:
    """Collects cleaned values and every field's error, reported together."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.errors: dict[str, str] = {}

    def check(self, key: str, name: str, value: Any, rule: Callable[[Any], Any]) -> None:
        try:
            self.values[key] = rule(value)
        except validation.InvalidValue as exc:
            self.errors[name] = str(exc)

    def required(self, key: str, name: str, value: Any, rule: Callable[[Any], Any]) -> None:
        """An optional input field that, when given, may not be null."""
        if not _given(value):
            return
        if value is None:
            self.errors[name] = "must not be null"
        else:
            self.check(key, name, value, rule)

    def raise_if_any(self) -> None:
        if self.errors:
            raise BadUserInput("Invalid input", fields=self.errors)


def _profile_values(checks: _Checks, given: ProfileInput | None, prefix: str) -> dict[str, Any]:
    """The profile fields present in the input, cleaned (null clears; preferences resets)."""
    values: dict[str, Any] = {}
    if given is None or not _given(given):
        return values
    for key, (name, rule) in _PROFILE_RULES.items():
        value = getattr(given, key)
        if not _given(value):
            continue
        if value is None:
            values[key] = {} if key == "preferences" else None
            continue
        try:
            values[key] = rule(value)
        except validation.InvalidValue as exc:
            checks.errors[f"{prefix}{name}"] = str(exc)
    return values


def _user(ctx: Context, row: Any, profile_row: Any = None) -> User:
    """The GraphQL user; a profile just written is primed into the loader (no re-read)."""
    if profile_row is not None:
        ctx.loaders.profile_by_user_id.prime(row.id, profile_row)
    return cast(User, row)  # a row: the type's fields read its columns


@strawberry.type
class UserMutation:
    @strawberry.mutation(description="Change your own names and profile (a partial update).")
    async def update_me(self, info: strawberry.Info[Context, None], input: UpdateMeInput) -> User:
        ctx = info.context
        viewer = ctx.require_user()
        checks = _Checks()
        checks.required("first_name", "firstName", input.first_name, validation.name)
        checks.required("last_name", "lastName", input.last_name, validation.name)
        profile_values = _profile_values(checks, input.profile, "profile.")
        checks.raise_if_any()
        row, profile_row = await profile.update_me(
            ctx.db,
            viewer=viewer,
            names=checks.values,
            profile=profile_values,
            meta=ctx.request_meta(),
        )
        return _user(ctx, row, profile_row)

    @strawberry.mutation(description="Create a user and its profile in one transaction (admins).")
    async def create_user(
        self,
        info: strawberry.Info[Context, None],
        input: CreateUserInput,
    ) -> User:
        ctx = info.context
        viewer = ctx.require_admin()
        checks = _Checks()
        checks.check("email", "email", input.email, validation.email)
        checks.check("password", "password", input.password, validation.password)
        checks.check("first_name", "firstName", input.first_name, validation.name)
        checks.check("last_name", "lastName", input.last_name, validation.name)
        profile_values = _profile_values(checks, input.profile, "profile.")
        checks.raise_if_any()
        new = admin.NewUser(
            **checks.values,
            role=RoleValue(input.role.value),
            status=StatusValue(input.status.value),
            email_verified=input.email_verified,
            profile=profile_values,
        )
        row, profile_row = await admin.create_user(
            ctx.db, ctx.settings.auth, actor=viewer, new=new, meta=ctx.request_meta()
        )
        return _user(ctx, row, profile_row)

    @strawberry.mutation(
        description="Change a user's names, role, status or verification (admins)."
    )
    async def update_user(
        self,
        info: strawberry.Info[Context, None],
        id: strawberry.ID,
        input: UpdateUserInput,
    ) -> User:
        ctx = info.context
        viewer = ctx.require_admin()
        user_id = parse_uuid(id)
        checks = _Checks()
        checks.required("first_name", "firstName", input.first_name, validation.name)
        checks.required("last_name", "lastName", input.last_name, validation.name)
        checks.required("role", "role", input.role, lambda r: r.value)
        checks.required("status", "status", input.status, lambda s: s.value)
        checks.required("email_verified", "emailVerified", input.email_verified, bool)
        checks.raise_if_any()
        row = await admin.update_user(
            ctx.db, actor=viewer, user_id=user_id, values=checks.values, meta=ctx.request_meta()
        )
        return _user(ctx, row)

    @strawberry.mutation(description="Delete a user with its profile and sessions (admins).")
    async def delete_user(
        self,
        info: strawberry.Info[Context, None],
        id: strawberry.ID,
    ) -> DeleteUserPayload:
        ctx = info.context
        viewer = ctx.require_admin()
        user_id = parse_uuid(id)
        await admin.delete_user(ctx.db, actor=viewer, user_id=user_id, meta=ctx.request_meta())
        return DeleteUserPayload(deleted_user_id=strawberry.ID(str(user_id)))
