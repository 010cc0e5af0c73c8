"""What a single-statement read runs on, and the array parameter that batches keys."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import ARRAY, ColumnElement, Uuid, any_, bindparam


class RowSource(Protocol):
    """One read statement, outside any transaction (``gql_api.db.Database`` is one): its rows,
    each readable by column name as an attribute."""

    async def fetch(self, statement: Any, params: dict[str, Any] | None = None) -> list[Any]: ...


def any_of_ids(name: str = "ids") -> ColumnElement[Any]:
    """``ANY(:name::UUID[])``: a batch of 1 and a batch of 100 keys are one prepared statement
    (an expanding ``IN`` would be one statement per batch size)."""
    return any_(bindparam(name, type_=ARRAY(Uuid())))
