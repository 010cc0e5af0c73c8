"""DateTime inputs the database can take.

Python parses offsets that push a moment out of its own range once converted to UTC
(``9999-12-31T23:59:59-14:00`` is year 10000, ``0001-01-01T00:00:00+14:00`` year 0); the driver
converts every ``timestamptz`` parameter to UTC and would fail the statement. Such a value is the
client's mistake, so it is refused as BAD_USER_INPUT naming the argument, before any SQL.
"""

from __future__ import annotations

from datetime import UTC, datetime

from gql_api.graphql.schema.errors import BadUserInput


def storable_datetime(value: datetime, argument: str) -> datetime:
    """``value`` in UTC (a value without an offset is taken as UTC), or BAD_USER_INPUT."""
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise BadUserInput(
            "The date is out of range once converted to UTC",
            fields={argument: "out of range once converted to UTC (years 1 to 9999)"},
        ) from None
