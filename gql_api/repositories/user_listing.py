"""Reading users page by page: filters, the four orders and keyset windows over them.

Only the columns the ``User`` type shows are selected (never ``password_hash``), as plain rows:
no ORM identity map to fill for a page that is serialised and dropped.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    DateTime,
    Select,
    Table,
    Text,
    and_,
    bindparam,
    cast,
    func,
    literal,
    literal_column,
    or_,
    select,
)

from gql_api.models import (
    USER_PUBLIC_COLUMNS,
    Role,
    User,
    UserCount,
    UserMfaFactor,
    UserStatus,
    public_columns_among,
)
from gql_api.repositories.keyset import KeysetBound, seek, trim
from gql_api.repositories.row_source import RowSource

users: Table = User.__table__  # type: ignore[attr-defined]
counts: Table = UserCount.__table__  # type: ignore[attr-defined]
factors: Table = UserMfaFactor.__table__  # type: ignore[attr-defined]

# A NULL last_login_at (never logged in) sorts as the oldest login. The same expression is
# indexed (idx_users_last_login_at_id), so ORDER BY and the seek condition use the index.
NEVER = literal_column("'-infinity'::timestamp with time zone", DateTime(timezone=True))
_LAST_LOGIN_KEY = func.coalesce(users.c.last_login_at, NEVER)


class BoundKind(StrEnum):
    """What of a window's end shapes the page's statement: whether its key is NULL (the
    values themselves are parameters)."""

    VALUE = "value"
    NULL = "null"


class UserSortKey(StrEnum):
    CREATED_AT = "created_at"
    EMAIL = "email"
    LAST_NAME = "last_name"
    LAST_LOGIN_AT = "last_login_at"

    @property
    def key(self) -> ColumnElement[Any]:
        """The SQL sort key (always paired with ``id`` as the tie-breaker)."""
        if self is UserSortKey.LAST_LOGIN_AT:
            return _LAST_LOGIN_KEY
        return users.c[self.value]

    @property
    def is_datetime(self) -> bool:
        return self in (UserSortKey.CREATED_AT, UserSortKey.LAST_LOGIN_AT)

    @property
    def nullable(self) -> bool:
        return self is UserSortKey.LAST_LOGIN_AT

    def key_of(self, row: Any) -> datetime | str | None:
        """The sort key of a fetched row, as it goes into a cursor."""
        value: datetime | str | None = getattr(row, self.value)
        return value

    def bound(self, name: str, kind: BoundKind | None) -> KeysetBound | None:
        """A window's end as the page's statement compares with it: parameters ``<name>_key``
        and ``<name>_id``, so that one statement (built and compiled once) serves every cursor;
        a NULL key is written as what NULL sorts as (:data:`NEVER`)."""
        if kind is None:
            return None
        key = NEVER if kind is BoundKind.NULL else bindparam(f"{name}_key", type_=self.key.type)
        return KeysetBound(key=key, id=bindparam(f"{name}_id", type_=users.c.id.type))


@dataclass(frozen=True)
class Position:
    """One end of a page, as a cursor gives it: the row's sort key (None: the key is NULL) and
    its id."""

    key: datetime | str | None
    id: uuid.UUID

    @property
    def kind(self) -> BoundKind:
        return BoundKind.NULL if self.key is None else BoundKind.VALUE

    def params(self, name: str) -> dict[str, Any]:
        """Its values for :meth:`UserSortKey.bound`'s parameters."""
        values: dict[str, Any] = {f"{name}_id": self.id}
        if self.key is not None:
            values[f"{name}_key"] = self.key
        return values


@dataclass(frozen=True)
class UserFilter:
    role: str | None = None
    status: str | None = None
    email_verified: bool | None = None
    search: str | None = None  # case-insensitive substring of email, first or last name
    created_after: datetime | None = None  # exclusive
    created_before: datetime | None = None  # exclusive
    mfa_enabled: bool | None = None  # has a confirmed second factor

    @property
    def by_role_and_status_only(self) -> bool:
        """Whether it filters on nothing but role and status (``user_counts`` counts it)."""
        return self == UserFilter(role=self.role, status=self.status)

    def conditions(self) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if self.role is not None:
            where.append(users.c.role == written(self.role, Role, self.role))
        if self.status is not None:
            where.append(users.c.status == written(self.status, UserStatus, self.status))
        if self.email_verified is not None:
            where.append(users.c.email_verified.is_(self.email_verified))
        if self.search:
            pattern = f"%{escape_like(self.search)}%"
            # Three ILIKEs OR-ed: PostgreSQL combines the three trigram GIN indexes (BitmapOr).
            where.append(
                or_(
                    # As text, like its trigram index (pg_trgm has no CITEXT operator class).
                    cast(users.c.email, Text).ilike(pattern, escape="\\"),
                    users.c.first_name.ilike(pattern, escape="\\"),
                    users.c.last_name.ilike(pattern, escape="\\"),
                )
            )
        if self.created_after is not None:
            where.append(users.c.created_at > self.created_after)
        if self.created_before is not None:
            where.append(users.c.created_at < self.created_before)
        if self.mfa_enabled is not None:
            # EXISTS over idx_user_mfa_factors_user_id: one index probe per candidate row.
            has_factor = (
                select(literal(1))
                .select_from(factors)
                .where(factors.c.user_id == users.c.id, factors.c.confirmed_at.is_not(None))
                .exists()
            )
            where.append(has_factor if self.mfa_enabled else ~has_factor)
        return where


def written(value: str, members: type[StrEnum], otherwise: Any) -> Any:
    """A role or status written into the statement as a literal (one of ``members``' values:
    letters and underscores), else ``otherwise`` (bound). Bound, PostgreSQL planned each page
    again for its values (a custom plan), as it cannot tell a generic plan is as good; a
    statement holds at most one role and one status, so there are a few of each."""
    if value in members._value2member_map_ and value.replace("_", "").isalpha():
        return literal_column(f"'{value}'")
    return otherwise


def escape_like(term: str) -> str:
    """The term matched literally inside a LIKE pattern (``%`` and ``_`` are not wildcards)."""
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class UserPage:
    rows: list[Any]  # public columns, in the page's order
    has_more: bool  # more rows lie beyond the page
    # How many users match the filter, read by the page's own statement when ``user_counts``
    # holds it (a filter of a role and a status at most) and the page has a row; else None.
    total: int | None


async def list_users(
    db: RowSource,
    *,
    where: UserFilter,
    order: UserSortKey,
    descending: bool,
    after: Position | None,
    before: Position | None,
    limit: int,
    from_end: bool,
    columns: frozenset[str] | None = None,
) -> UserPage:
    """One keyset page of users, whether more rows lie beyond it, and the filter's total when
    the per (role, status) counts give it for nothing. The rows hold the public ``columns``
    (all for None) and what a page needs of each: its id and sort key."""
    # One statement per filter, order and kind of window, whatever the cursor: built once
    # (cached), it also keeps its SQL cache key. Building a page's statement and walking it
    # for a key took about a fifth of a deep page's CPU when each cursor had its own.
    kinds = (after.kind if after else None, before.kind if before else None)
    statement = _page(where, order, descending, *kinds, limit, from_end, columns)
    params = _summed_params(where)
    for name, position in (("after", after), ("before", before)):
        if position is not None:
            params.update(position.params(name))
    rows = await db.fetch(statement, params)
    page, has_more = trim(rows, limit=limit, from_end=from_end)
    total = int(rows[0].total_count) if rows and where.by_role_and_status_only else None
    return UserPage(page, has_more, total)


# Bounded: 128 statements of a few KB each, one per filter, order, kind of window and columns
# shown (their only free-form value is a search term of at most 100 characters; a cursor's
# values are parameters); a miss only builds one again.
@functools.lru_cache(maxsize=128)
def _page(
    where: UserFilter,
    order: UserSortKey,
    descending: bool,
    after: BoundKind | None,
    before: BoundKind | None,
    limit: int,
    from_end: bool,
    shown: frozenset[str] | None,
) -> Select[Any]:
    columns: list[Any] = list(public_columns_among(User, shown, keys=("id", order.value)))
    if where.by_role_and_status_only:
        # The total rides along: a sum of at most four rows of ``user_counts``, evaluated
        # once (an InitPlan), where asking for it apart would cost a statement of its own.
        summed = _summed(where.role, where.status)
        columns.append(summed.scalar_subquery().label("total_count"))
    statement = select(*columns).where(and_(True, *where.conditions()))
    return seek(
        statement,
        key=order.key,
        row_id=users.c.id,
        descending=descending,
        after=order.bound("after", after),
        before=order.bound("before", before),
        limit=limit,
        from_end=from_end,
    )


async def count_users(db: RowSource, *, where: UserFilter) -> int:
    """How many users match: from the per (role, status) counts (migration 0014) when the
    filter is no more than a role and a status, else by counting the table."""
    if where.by_role_and_status_only:
        statement = _summed(where.role, where.status)
        rows = await db.fetch(statement, _summed_params(where))
    else:
        rows = await db.fetch(_count(where))
    return int(rows[0][0])


def _summed_params(where: UserFilter) -> dict[str, Any]:
    return {"role": where.role, "status": where.status}


# Per role and status (each None, one of a few values, or bound: ``written``).
@functools.lru_cache(maxsize=16)
def _summed(role: str | None, status: str | None) -> Select[Any]:
    total = func.coalesce(func.sum(counts.c.users), literal_column("0"))
    statement = select(cast(total, BigInteger))
    if role is not None:
        statement = statement.where(counts.c.role == written(role, Role, bindparam("role")))
    if status is not None:
        statement = statement.where(
            counts.c.status == written(status, UserStatus, bindparam("status"))
        )
    return statement


@functools.lru_cache(maxsize=128)
def _count(where: UserFilter) -> Select[Any]:
    return select(func.count()).select_from(users).where(and_(True, *where.conditions()))


async def get_public(db: RowSource, *, user_id: uuid.UUID) -> Any | None:
    """One user's public columns, or None."""
    rows = await db.fetch(select(*USER_PUBLIC_COLUMNS).where(users.c.id == user_id))
    return rows[0] if rows else None
