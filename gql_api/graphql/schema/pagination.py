"""Relay connections over keyset pages: the types, the page-size rules and opaque cursors.

A cursor is ``base64url(json([tag, key, id]))``: the position of one row in one order. ``tag``
names the order (field and direction), so a cursor taken in one order is refused in another
rather than silently jumping to an unrelated position. Cursors are opaque to clients, not
secret: they only hold values the client could already see.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

import orjson
import strawberry

from gql_api.graphql.engine.rows import row_holder
from gql_api.graphql.schema.datetimes import storable_datetime
from gql_api.graphql.schema.errors import BadUserInput

DEFAULT_PAGE_SIZE = 20
# The longest cursor we hand out holds a 255-character key, each character escaped in JSON:
# about 4,200 characters. Anything longer is not ours and is refused before it is decoded.
MAX_CURSOR_LENGTH = 8192

NodeT = TypeVar("NodeT")
KeyKind = Literal["datetime", "text"]


@row_holder  # no field of it reads the rows' columns
@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


# Where one row sits in one order: (tag, sort key, id), what a cursor encodes.
Position = tuple[str, datetime | str | None, uuid.UUID]


@row_holder  # no field of it reads the rows' columns
@strawberry.type
class Edge(Generic[NodeT]):
    # Encoded only when a client selects the cursor.
    position: strawberry.Private[Position]

    @strawberry.field
    def cursor(self) -> str:
        return encode_cursor(*self.position)

    node: NodeT


@row_holder  # no field of it reads the rows' columns
@strawberry.type
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]]
    page_info: PageInfo
    # Runs only when selected; a page whose statement already read the total returns it.
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(
        description="Rows matching the filter, over all pages (may cost one more query)."
    )
    async def total_count(self) -> int:
        return await self.count()


@dataclass(frozen=True)
class Window:
    """How many rows a page holds and from which end of the range they are taken."""

    limit: int
    from_end: bool  # `last`: the rows nearest `before` (or the end), still in forward order


def page_window(first: int | None, last: int | None, *, max_size: int) -> Window:
    """``first``/``last`` checked: at most one, 0 < n <= ``max_size`` (the setting
    ``graphql.max_page_size``, which the cost also counts with), default first 20."""
    if first is not None and last is not None:
        raise BadUserInput(
            "Pass either first or last, not both",
            fields={"first": "not with last", "last": "not with first"},
        )
    for name, value in (("first", first), ("last", last)):
        if value is not None and not 1 <= value <= max_size:
            raise BadUserInput(
                f"{name} must be between 1 and {max_size}",
                fields={name: f"must be between 1 and {max_size}"},
            )
    if last is not None:
        return Window(limit=last, from_end=True)
    return Window(limit=first if first is not None else DEFAULT_PAGE_SIZE, from_end=False)


def encode_cursor(tag: str, key: datetime | str | None, row_id: uuid.UUID) -> str:
    # This runs for every edge of a Relay page. orjson writes a datetime as isoformat() does
    # (what decode_cursor reads), several times faster (not asyncpg's UUIDs: str() them);
    # binascii is what base64.urlsafe_b64encode calls, without its copies.
    raw = orjson.dumps([tag, key, str(row_id)])
    return binascii.b2a_base64(raw, newline=False).translate(_URL_SAFE).rstrip(b"=").decode()


_URL_SAFE = bytes.maketrans(b"+/", b"-_")


def decode_cursor(
    cursor: str, *, tag: str, kind: KeyKind, nullable: bool = False, argument: str = "after"
) -> tuple[Any, uuid.UUID]:
    """The (key, id) a cursor points at, or BAD_USER_INPUT naming ``argument``.

    The key is also one the database accepts: a datetime that exists in UTC, text without NUL.
    """
    try:
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise ValueError("too long")
        padded = cursor + "=" * (-len(cursor) % 4)
        # orjson refuses nesting deeper than 1,024 levels (json.loads would recurse until it
        # raised RecursionError) and invalid UTF-8.
        got_tag, key, row_id = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        if got_tag != tag:
            raise BadUserInput(
                "The cursor belongs to another ordering; start again from the first page",
                fields={argument: "cursor from another ordering"},
            )
        position = uuid.UUID(row_id)
        if key is None:
            if not nullable:
                raise ValueError("null key")
            return None, position
        if kind == "datetime":
            moment = datetime.fromisoformat(key)
            if moment.tzinfo is None:
                raise ValueError("naive datetime")
            return storable_datetime(moment, argument), position
        if not isinstance(key, str) or "\x00" in key:
            raise ValueError("text key expected")
        return key, position
    except BadUserInput:
        raise
    except (ValueError, TypeError, UnicodeError, binascii.Error, AttributeError):
        raise BadUserInput("Malformed cursor", fields={argument: "malformed cursor"}) from None


def build_connection(
    nodes: Sequence[NodeT],
    positions: Sequence[Position],
    *,
    window: Window,
    has_more: bool,
    after: str | None,
    before: str | None,
    count: Callable[[], Awaitable[int]],
) -> Connection[NodeT]:
    """Relay page info from one keyset fetch of ``limit + 1`` rows.

    The fetch only tells whether more rows lie in its direction of travel. For the other side we
    answer as the Relay spec allows without another query: a cursor on that side implies rows
    there (they may since have been deleted).
    """
    edges = [Edge(position=p, node=n) for p, n in zip(positions, nodes, strict=True)]
    if window.from_end:
        has_next, has_previous = before is not None, has_more
    else:
        has_next, has_previous = has_more, after is not None
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=has_next,
            has_previous_page=has_previous,
            start_cursor=encode_cursor(*positions[0]) if positions else None,
            end_cursor=encode_cursor(*positions[-1]) if positions else None,
        ),
        count=count,
    )
