"""User queries: ``me``, ``user(id)`` and the admins' ``users`` connection.

``user(id)``: a malformed id is BAD_USER_INPUT; a user may read only itself (any other id is
FORBIDDEN, whether or not it exists, so existence is not revealed); an admin gets ``null`` for
an id that names no user.

An admin's ``user(id)`` and ``users`` pages are staleness-tolerant reads (``db.stale_reads()``):
on a read replica when one serves, except after the admin's own writes (gql_api.db.database).
``me`` and one's own ``user(id)`` are the viewer authentication loaded from the primary.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

from gql_api import validation
from gql_api.graphql.engine.lookahead import row_columns
from gql_api.graphql.schema.context import Context
from gql_api.graphql.schema.datetimes import storable_datetime
from gql_api.graphql.schema.errors import BadUserInput, Forbidden
from gql_api.graphql.schema.ids import parse_uuid
from gql_api.graphql.schema.pagination import (
    Connection,
    build_connection,
    decode_cursor,
    page_window,
)
from gql_api.graphql.schema.types import Role, User, UserStatus
from gql_api.repositories import user_listing
from gql_api.repositories.user_listing import Position, UserSortKey

MAX_SEARCH_LENGTH = 100


@strawberry.enum
class UserOrderField(Enum):
    CREATED_AT = "created_at"
    EMAIL = "email"
    LAST_NAME = "last_name"
    LAST_LOGIN_AT = "last_login_at"


@strawberry.enum
class OrderDirection(Enum):
    ASC = "asc"
    DESC = "desc"


@strawberry.input
class UserOrder:
    field: UserOrderField = UserOrderField.CREATED_AT
    direction: OrderDirection = OrderDirection.DESC


@strawberry.input
class UserFilter:
    role: Role | None = None
    status: UserStatus | None = None
    email_verified: bool | None = None
    search: str | None = strawberry.field(
        default=None, description="Case-insensitive substring of the e-mail or either name."
    )
    created_after: datetime | None = strawberry.field(default=None, description="Exclusive.")
    created_before: datetime | None = strawberry.field(default=None, description="Exclusive.")
    mfa_enabled: bool | None = strawberry.field(
        default=None, description="Has (true) or lacks (false) a confirmed second factor."
    )

    def to_filter(self) -> user_listing.UserFilter:
        search = None
        if self.search is not None:
            try:
                search = validation.plain_text(self.search.strip(), max_length=MAX_SEARCH_LENGTH)
            except validation.InvalidValue as exc:
                raise BadUserInput("Invalid search", fields={"filter.search": str(exc)}) from None
        return user_listing.UserFilter(
            role=self.role.value if self.role is not None else None,
            status=self.status.value if self.status is not None else None,
            email_verified=self.email_verified,
            search=search or None,
            created_after=_moment(self.created_after, "filter.createdAfter"),
            created_before=_moment(self.created_before, "filter.createdBefore"),
            mfa_enabled=self.mfa_enabled,
        )


def _moment(value: datetime | None, argument: str) -> datetime | None:
    return storable_datetime(value, argument) if value is not None else None


def _position(
    cursor: str | None, *, tag: str, order: UserSortKey, argument: str
) -> Position | None:
    if cursor is None:
        return None
    key, row_id = decode_cursor(
        cursor,
        tag=tag,
        kind="datetime" if order.is_datetime else "text",
        nullable=order.nullable,
        argument=argument,
    )
    return Position(key, row_id)


# Every resolver of a user returns its row (the viewer's, or one of a page): the User type's
# fields read their columns, so the generic executor and the planned one run these same
# functions (gql_api.graphql.engine.rows).


@strawberry.type
class UserQuery:
    @strawberry.field(description="The signed-in user; null when anonymous.")
    def me(self, info: strawberry.Info[Context, None]) -> User | None:
        viewer = info.context.current_viewer()
        return viewer.user if viewer is not None else None

    @strawberry.field(
        description="A user by id: yourself, or anyone for admins (null when no such user)."
    )
    async def user(self, info: strawberry.Info[Context, None], id: strawberry.ID) -> User | None:
        viewer = info.context.require_user()
        user_id = parse_uuid(id)
        if user_id == viewer.user.id:
            return viewer.user  # type: ignore[no-any-return]  # already loaded by authentication
        if not viewer.is_admin:
            raise Forbidden("You can only read your own account")
        row = await user_listing.get_public(info.context.db.stale_reads(), user_id=user_id)
        return row  # type: ignore[no-any-return]

    @strawberry.field(description="Users page by page (admins only); newest first by default.")
    async def users(
        self,
        info: strawberry.Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: UserFilter | None = None,
        order_by: UserOrder | None = None,
    ) -> Connection[User]:
        info.context.require_admin()
        window = page_window(first, last, max_size=info.context.settings.graphql.max_page_size)
        order_input = order_by or UserOrder()
        order = UserSortKey(order_input.field.value)
        descending = order_input.direction is OrderDirection.DESC
        tag = f"users:{order.value}:{order_input.direction.value}"
        where = filter.to_filter() if filter is not None else user_listing.UserFilter()
        start = _position(after, tag=tag, order=order, argument="after")
        end = _position(before, tag=tag, order=order, argument="before")

        db = info.context.db.stale_reads()
        page = await user_listing.list_users(
            db,
            where=where,
            order=order,
            descending=descending,
            after=start,
            before=end,
            limit=window.limit,
            from_end=window.from_end,
            columns=row_columns("users"),  # what the planned document reads of its users
        )

        async def count() -> int:
            if page.total is not None:
                return page.total
            return await user_listing.count_users(db, where=where)

        return build_connection(
            page.rows,
            [(tag, order.key_of(r), r.id) for r in page.rows],
            window=window,
            has_more=page.has_more,
            after=after,
            before=before,
            count=count,
        )
