"""IDs in arguments: a malformed one is the client's mistake (BAD_USER_INPUT), never a 500."""

from __future__ import annotations

import uuid

from gql_api.graphql.schema.errors import BadUserInput


def parse_uuid(value: str, field: str = "id") -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise BadUserInput(f"{field} is not a valid ID", fields={field: "not a valid ID"}) from None
