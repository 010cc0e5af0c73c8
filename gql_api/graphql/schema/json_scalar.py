"""The ``JSON`` scalar, with an output side that never hands the response encoder a value it
cannot write.

Inputs are bounded by ``gql_api.validation`` before they are stored, but rows written by an
older version (or by hand) may hold JSON nested deeper than orjson writes (254 levels for the
whole response) or integers beyond 64 bits: one such value would turn the whole response into a
bare 500. Such a value is sent as :data:`UNREADABLE` instead (an object, so a non-null field
stays valid) and logged; writing a new value repairs it. Same name, description and input side
as Strawberry's own scalar, so ``schema.graphql`` does not change.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from strawberry.scalars import JSON
from strawberry.schema.types.scalar import DEFAULT_SCALAR_REGISTRY
from strawberry.types.scalar import ScalarDefinition

log = logging.getLogger(__name__)

# Room under orjson's 254 levels for the response around the value (data, fields, lists).
MAX_DEPTH = 64
_NUMBER_BOUND = 2**63  # orjson writes no integer beyond 64 bits
UNREADABLE = {"__unreadable": "this stored value cannot be sent; write a new value to replace it"}


def writable(value: Any) -> bool:
    """Whether orjson can write ``value`` inside a response: nesting and integers bounded.
    Iterative, and lean (this runs on every read of a JSON field): strings, floats, booleans
    and null from PostgreSQL are always writable."""
    if not isinstance(value, dict | list):
        return not isinstance(value, int) or -_NUMBER_BOUND < value < _NUMBER_BOUND
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return False
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
            elif isinstance(child, int) and not -_NUMBER_BOUND < child < _NUMBER_BOUND:
                return False
    return True


def serialize(value: Any) -> Any:
    if writable(value):
        return value
    log.warning("a stored JSON value that cannot be sent was replaced in a response")
    return dict(UNREADABLE)


JSON_SCALAR: ScalarDefinition = dataclasses.replace(
    DEFAULT_SCALAR_REGISTRY[JSON], serialize=serialize
)
SCALAR_OVERRIDES: dict[object, Any] = {JSON: JSON_SCALAR}
