"""Which relations PostgreSQL writes as JSON text for the response to splice unread.

A relation's selection (``gql_api.graphql.engine.rows.Relation``) is written by PostgreSQL
(``gql_api.repositories.json_text``) when that gives the very bytes the row path gives: each
field a column or a constant ``__typename``, each column of a type with an exact rendering, the
field's scalar serialising the values rows hold as that rendering assumes (checked on samples
when the document compiles: a scalar that changes loses this path, never its format), and no
error the row path could report: a non-null field reads a NOT NULL column, and a missing row is
a null the field allows (or an empty list); and at most :data:`MAX_FIELDS` fields. Anything
else loads rows, as before.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from graphql import GraphQLList, GraphQLNonNull, GraphQLObjectType, GraphQLScalarType
from graphql import get_named_type as named_type

from gql_api.graphql.engine.field_plans import FieldPlan
from gql_api.graphql.engine.scalar_shortcuts import gives
from gql_api.repositories.json_text import JsonField, Rendering, rendering_of

# A selection's statement grows with its fields (about 600 bytes of SQL for a timestamp), and
# its aliases make new statements: beyond this many fields the relation reads rows, whose
# statement depends only on the set of columns (a page shows a few fields). At 16, the largest
# statement stays under the 15 KB asyncpg keeps prepared.
MAX_FIELDS = 16
_UUID = uuid.UUID("01234567-89ab-cdef-0123-456789abcdef")
# Per rendering, values a row holds and what the scalar must make of them.
_SAMPLES: dict[Rendering, tuple[tuple[Any, Any], ...]] = {
    Rendering.TEXT: (("sample", "sample"), ('é "\\\n', 'é "\\\n')),
    Rendering.UUID: ((_UUID, str(_UUID)),),
    Rendering.TIMESTAMP: (
        (datetime(2026, 12, 2, 16, 20, 41, 724271, tzinfo=UTC), "2026-12-02T16:20:41.724271+00:00"),
        (datetime(2026, 12, 2, 16, 20, 41, tzinfo=UTC), "2026-12-02T16:20:41+00:00"),
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00+00:00"),
        # +/-infinity, as asyncpg reads them.
        (datetime.max, "9999-12-31T23:59:59.999999"),
        (datetime.min, "0001-01-01T00:00:00"),
    ),
}


def json_fields(plan: FieldPlan) -> tuple[JsonField, ...] | None:
    """What PostgreSQL writes of each loaded row for this relation field, or None: rows."""
    relation = plan.relation
    if relation is None or relation.load_json is None or relation.table is None:
        return None
    if (
        plan.build is None
        or plan.children is None
        or len(plan.children) > MAX_FIELDS
        or plan.rest
        or plan.children_error is not None
        or plan.type_checked
        or not _missing_is_allowed(plan.graphql_type)
    ):
        return None
    table = relation.table.__table__  # type: ignore[attr-defined]
    fields: list[JsonField] = []
    for child in plan.children:
        if child.typename is not None:
            fields.append(JsonField(child.key, constant=child.typename))
            continue
        if child.column is None or child.column.convert is not None:
            return None
        column = table.c.get(child.column.name)
        rendering = None if column is None else rendering_of(column)
        if rendering is None or not _exact(child.graphql_type, rendering, column.nullable):
            return None
        fields.append(JsonField(child.key, child.column.name, rendering))
    return tuple(fields)


def _missing_is_allowed(graphql_type: Any) -> bool:
    """A parent without rows gets null (a nullable object) or ``[]`` (a list): never an error."""
    if isinstance(graphql_type, GraphQLNonNull):
        return isinstance(graphql_type.of_type, GraphQLList)
    return isinstance(graphql_type, GraphQLObjectType | GraphQLList)


def _exact(graphql_type: Any, rendering: Rendering, column_nullable: bool | None) -> bool:
    if isinstance(graphql_type, GraphQLNonNull) and column_nullable is not False:
        return False  # a null would be an error at the field's path
    scalar = named_type(graphql_type)
    if not isinstance(scalar, GraphQLScalarType):
        return False
    return all(gives(scalar.serialize, value, out) for value, out in _SAMPLES[rendering])
