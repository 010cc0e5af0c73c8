"""The benchmark's operations, exactly as both apps receive them.

Q1 is ``me`` with a user's bearer token; Q2 the admins' first page of ``users`` with profiles and
sessions; Q3 the same selection on a page after a cursor 90% deep into the table. The bodies are
fixed bytes so that every client (wrk, the Python client, the JSON check) sends the same request.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

ME = "query Me { me { id email firstName lastName role } }"

USERS_SELECTION = (
    "totalCount edges { node { id email firstName lastName role status createdAt "
    "profile { bio timezone locale } sessions { id userAgent ipAddress expiresAt } } }"
)
USERS = f"query Users {{ users(first: 20) {{ {USERS_SELECTION} }} }}"
USERS_AFTER = (
    "query UsersAfter($after: String!) "
    f"{{ users(first: 20, after: $after) {{ {USERS_SELECTION} }} }}"
)


def users_page(first: int) -> str:
    """Q2's selection at another page size (for counting statements per request)."""
    return f"query UsersPage {{ users(first: {first}) {{ {USERS_SELECTION} }} }}"


@dataclass(frozen=True)
class Operation:
    """One benchmarked request: a name, the JSON body and the bearer token it carries."""

    name: str
    title: str
    body: bytes
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"content-type": "application/json", "authorization": f"Bearer {self.token}"}


def body(query: str, variables: dict[str, object] | None = None) -> bytes:
    payload: dict[str, object] = {"query": query}
    if variables:
        payload["variables"] = variables
    return orjson.dumps(payload)


def operations(*, user_token: str, admin_token: str, deep_cursor: str) -> list[Operation]:
    return [
        Operation("Q1", "me (bearer token)", body(ME), user_token),
        Operation("Q2", "users(first: 20) + profile + sessions (admin)", body(USERS), admin_token),
        Operation(
            "Q3",
            "Q2 after a cursor 90% deep",
            body(USERS_AFTER, {"after": deep_cursor}),
            admin_token,
        ),
    ]
