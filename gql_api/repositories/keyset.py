"""Keyset (seek) pagination: a window of rows after/before a (sort key, id) position.

Each page is ``WHERE (key, id) > (:key, :id) ORDER BY key, id LIMIT n + 1`` on an index over
(key, id), so a page deep in the table costs what the first one does; OFFSET would read and
discard every row before it. The extra row tells whether more rows lie in that direction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, literal_column, tuple_

RowT = TypeVar("RowT")


@dataclass(frozen=True)
class KeysetBound:
    """One end of a keyset window: where a cursor points, as the row's sort key (bound in SQL)
    and its id."""

    key: Any  # a value, or a SQL expression (e.g. the '-infinity' a NULL sorts as)
    id: Any


def seek(
    statement: Select[Any],
    *,
    key: ColumnElement[Any],
    row_id: ColumnElement[Any],
    descending: bool,
    after: KeysetBound | None,
    before: KeysetBound | None,
    limit: int,
    from_end: bool,
) -> Select[Any]:
    """``statement`` restricted to rows strictly between ``after`` and ``before`` (in the given
    order), ordered so that the first ``limit + 1`` rows are the wanted end of that range."""
    row = tuple_(key, row_id)
    if after is not None:
        bound = tuple_(after.key, after.id)
        statement = statement.where(row < bound if descending else row > bound)
    if before is not None:
        bound = tuple_(before.key, before.id)
        statement = statement.where(row > bound if descending else row < bound)
    # `last`: walk the range backwards from its end, then put the rows back in order.
    backwards = descending != from_end
    ordering = (key.desc(), row_id.desc()) if backwards else (key.asc(), row_id.asc())
    # The limit is written into the statement, not bound: PostgreSQL plans a bound LIMIT for
    # a tenth of the table, so it planned every page again (a custom plan, 30-40 µs of its CPU
    # per page) where a written one lets it keep the statement's plan.
    return statement.order_by(*ordering).limit(literal_column(str(int(limit) + 1)))


def trim(rows: Sequence[RowT], *, limit: int, from_end: bool) -> tuple[list[RowT], bool]:
    """The page in forward order and whether more rows lay beyond it."""
    has_more = len(rows) > limit
    page = list(rows[:limit])
    if from_end:
        page.reverse()
    return page, has_more
