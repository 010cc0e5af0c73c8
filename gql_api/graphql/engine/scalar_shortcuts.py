"""Scalars a row builder writes without calling their ``serialize``, for the value types rows
hold (``gql_api.graphql.engine.row_builders``).

A page of users serialises some 250 column values; a call to ``serialize`` costs more than
what it does for the common case: graphql-core's ``String`` returns a ``str`` as it is, ``ID``
makes a UUID its ``str()``, and Strawberry's ``DateTime`` calls ``isoformat()`` (about 1 us each
here). For those exact cases the builder writes the expression inline; for a UTC datetime it
leaves the value to the response's encoder, orjson, which writes the same text as
``isoformat()`` in a tenth of the time; a ``bool``, or an ``int`` within GraphQL's 32 bits, goes
as it is where the scalar returns it so. Everything else still goes through ``serialize``.

The planned executor's walk takes the same shortcuts for a leaf whose value comes from its
parent object (an attribute, or a resolver of the parent alone, such as a Relay edge's cursor):
:func:`leaf_writer`.

Each shortcut is taken only when the scalar's ``serialize`` gives, for sample values, exactly
what the shortcut gives (checked when a document compiles): a scalar that changes (a ``DateTime``
written with ``Z``, say) silently loses its shortcut, never its format.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

_SAMPLE_TEXT = "sample"
_SAMPLE_UUID = uuid.UUID("01234567-89ab-cdef-0123-456789abcdef")
_INT_RANGE = (-(2**31), 2**31 - 1)  # GraphQL's Int
_SAMPLE_MOMENTS = (
    datetime(2026, 12, 2, 16, 20, 41, 724271, tzinfo=UTC),
    datetime(2026, 12, 2, 16, 20, 41, tzinfo=UTC),  # no fraction: isoformat leaves it out
)


def gives(serialize: Callable[[Any], Any], value: Any, expected: Any) -> bool:
    """Whether ``serialize(value)`` is ``expected``: equal, and of its type (7.0 is not 7)."""
    try:
        result = serialize(value)
    except Exception:
        return False
    return type(result) is type(expected) and bool(result == expected)


def shortcut(serialize: Callable[[Any], Any], value: str, call: str, names: dict[str, Any]) -> str:
    """The expression for the serialised ``value`` (a variable's name; ``call`` is the scalar's
    own call on it), taking the shortcuts this scalar allows."""
    conditions: list[str] = []
    if gives(serialize, _SAMPLE_TEXT, _SAMPLE_TEXT):
        conditions.append(f"{value} if {value}.__class__ is str")
    if gives(serialize, _SAMPLE_UUID, str(_SAMPLE_UUID)):
        names["_UUID"] = uuid.UUID
        conditions.append(f"str({value}) if isinstance({value}, _UUID)")
    if all(gives(serialize, m, orjson.dumps(m).decode()[1:-1]) for m in _SAMPLE_MOMENTS):
        names["_datetime"], names["_UTC"] = datetime, UTC
        conditions.append(f"{value} if {value}.__class__ is _datetime and {value}.tzinfo is _UTC")
    if gives(serialize, True, True) and gives(serialize, False, False):
        conditions.append(f"{value} if {value}.__class__ is bool")
    if all(gives(serialize, n, n) for n in (7, *_INT_RANGE)):
        low, high = _INT_RANGE
        conditions.append(f"{value} if {value}.__class__ is int and {low} <= {value} <= {high}")
    if not conditions:
        return call
    return "(" + " else ".join([*conditions, call]) + ")"


# What a leaf writer returns for a value it leaves to the executor's completion.
WALK: Any = object()


def leaf_writer(serialize: Callable[[Any], Any], *, non_null: bool) -> Callable[[Any], Any] | None:
    """``value -> JSON value`` for the values a shortcut covers (and a null where the field may
    be null), else :data:`WALK`: anything else (a null where it may not be, an awaitable, a
    value the scalar refuses) is completed as graphql-core completes it. None when the scalar
    allows no shortcut."""
    names: dict[str, Any] = {"_WALK": WALK}
    written = shortcut(serialize, "v", "_WALK", names)
    if written == "_WALK":
        return None
    null = "_WALK" if non_null else "None"
    source = f"def leaf(v):\n    return {null} if v is None else {written}\n"
    exec(compile(source, "<leaf writer>", "exec"), names)  # noqa: S102 - our own source
    leaf: Callable[[Any], Any] = names["leaf"]
    return leaf
