"""The benchmark's operations, exactly as the apps receive them.

Q1 is ``me`` with a user's bearer token; Q2 the admins' first page of ``users`` with profiles and
sessions; Q3 the same selection on a page after a cursor 90% deep into the table. The bodies are
fixed bytes so that every client (wrk, the Python client, the JSON check) sends the same request.

The client shapes (``SHAPES``) ask for Q1's or Q2's data the way real clients write it (Apollo,
its persisted queries, Relay, a filter variable, ``@include``); each has its PostGraphile v5
equivalent, written against the schema PostGraphile's amber preset generates on the benchmark's
tables (``allUsers``, ``rowId``, ``userProfileByUserId``, ``userSessionsByUserId { nodes }``,
``condition``). ``summary`` reduces either app's answer to what both must agree on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
    """One benchmarked request: a name, the JSON body and the bearer token it carries (none
    when empty); ``setup`` is sent once before the first use (APQ: the registration)."""

    name: str
    title: str
    body: bytes
    token: str
    setup: bytes | None = None

    @property
    def headers(self) -> dict[str, str]:
        if not self.token:
            return {"content-type": "application/json"}
        return {"content-type": "application/json", "authorization": f"Bearer {self.token}"}


def body(query: str, variables: dict[str, object] | None = None) -> bytes:
    payload: dict[str, object] = {"query": query}
    if variables:
        payload["variables"] = variables
    return orjson.dumps(payload)


def operation_named(name: str, data: Any) -> Operation:
    """Q1, Q2 or Q3 for a prepared dataset (``bench.dataset.Dataset``: its tokens and cursor)."""
    ops = operations(
        user_token=data.user_token, admin_token=data.admin_token, deep_cursor=data.deep_cursor
    )
    return next(op for op in ops if op.name == name)


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


# --- Client shapes -----------------------------------------------------------------------------
#
# Each shape is a function of the page size (the statement counts take 1, 20 and 100) giving the
# request for our server and for PostGraphile. "Q1" and "Q2" are the plain documents above.

PAGE = 20
# The filter shape's variable: a page of active plain users (the bench admin is left out).
USER_FILTER = {"role": "USER", "status": "ACTIVE"}
PGL_CONDITION = {"role": "user", "status": "active"}  # PostGraphile: columns as stored
PGL_ORDER = "orderBy: [CREATED_AT_DESC, PRIMARY_KEY_DESC]"  # our default order, made explicit
PGL_USER = (
    "rowId email firstName lastName role status createdAt "
    "userProfileByUserId { bio timezone locale } "
    "userSessionsByUserId { nodes { rowId userAgent ipAddress expiresAt } }"
)
PGL_ME_FIELDS = "rowId email firstName lastName role"


@dataclass(frozen=True)
class Request:
    """One GraphQL request: the document, its variables and (APQ) its hash only."""

    query: str
    variables: dict[str, object] | None = None
    persisted: bool = False  # send the sha256 hash instead of the text (Apollo APQ)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.query.encode()).hexdigest()

    def body(self) -> bytes:
        if not self.persisted:
            return body(self.query, self.variables)
        payload: dict[str, object] = {
            "extensions": {"persistedQuery": {"version": 1, "sha256Hash": self.sha256}}
        }
        if self.variables:
            payload["variables"] = self.variables
        return orjson.dumps(payload)

    def registration(self) -> bytes | None:
        """APQ: the body that stores the document (text and hash), sent once before any load;
        as an Apollo client does after the hash alone answered PERSISTED_QUERY_NOT_FOUND."""
        if not self.persisted:
            return None
        payload = orjson.loads(self.body())
        payload["query"] = self.query
        return orjson.dumps(payload)


def _apollo(first: int) -> str:
    # Apollo Client adds __typename to every selection set but the operation's root.
    return (
        f"query AdminUsers {{ users(first: {first}) {{ __typename totalCount edges {{ __typename "
        "node { __typename id email firstName lastName role status createdAt "
        "profile { __typename bio timezone locale } "
        "sessions { __typename id userAgent ipAddress expiresAt } } } } }"
    )


def _pgl_apollo(first: int) -> str:
    return (
        f"query AdminUsers {{ allUsers(first: {first}, {PGL_ORDER}) {{ __typename totalCount "
        "edges { __typename node { __typename rowId email firstName lastName role status "
        "createdAt userProfileByUserId { __typename bio timezone locale } "
        "userSessionsByUserId { __typename nodes { __typename rowId userAgent ipAddress "
        "expiresAt } } } } } }"
    )


# Relay: one fragment per component, the compiler's connection fields (cursor, pageInfo) and
# the page size and cursor as variables.
RELAY = (
    "query UsersPageQuery($first: Int!, $after: String) { users(first: $first, after: $after) "
    "{ ...UserList_users } } "
    "fragment UserList_users on UserConnection { totalCount edges { cursor node { id "
    "...UserRow_user __typename } } pageInfo { endCursor hasNextPage } } "
    "fragment UserRow_user on User { email firstName lastName role status createdAt "
    "profile { ...UserProfile_profile } sessions { ...UserSession_session } } "
    "fragment UserProfile_profile on Profile { bio timezone locale } "
    "fragment UserSession_session on Session { id userAgent ipAddress expiresAt }"
)
PGL_RELAY = (
    "query UsersPageQuery($first: Int!, $after: Cursor) { allUsers(first: $first, after: $after, "
    f"{PGL_ORDER}) {{ ...UserList_users }} }} "
    "fragment UserList_users on UserConnection { totalCount edges { cursor node { rowId "
    "...UserRow_user __typename } } pageInfo { endCursor hasNextPage } } "
    "fragment UserRow_user on User { email firstName lastName role status createdAt "
    "userProfileByUserId { ...UserProfile_profile } "
    "userSessionsByUserId { nodes { ...UserSession_session } } } "
    "fragment UserProfile_profile on UserProfile { bio timezone locale } "
    "fragment UserSession_session on UserSession { rowId userAgent ipAddress expiresAt }"
)
FILTER = (
    "query FilteredUsers($first: Int!, $filter: UserFilter) "
    f"{{ users(first: $first, filter: $filter) {{ {USERS_SELECTION} }} }}"
)
PGL_FILTER = (
    "query FilteredUsers($first: Int!, $condition: UserCondition) "
    f"{{ allUsers(first: $first, condition: $condition, {PGL_ORDER}) "
    f"{{ totalCount edges {{ node {{ {PGL_USER} }} }} }} }}"
)
INCLUDE = (
    "query UsersMaybeSessions($first: Int!, $withSessions: Boolean!) { users(first: $first) { "
    "totalCount edges { node { id email firstName lastName role status createdAt "
    "profile { bio timezone locale } "
    "sessions @include(if: $withSessions) { id userAgent ipAddress expiresAt } } } } }"
)
PGL_INCLUDE = (
    "query UsersMaybeSessions($first: Int!, $withSessions: Boolean!) "
    f"{{ allUsers(first: $first, {PGL_ORDER}) {{ totalCount edges {{ node {{ "
    "rowId email firstName lastName role status createdAt "
    "userProfileByUserId { bio timezone locale } "
    "userSessionsByUserId @include(if: $withSessions) "
    "{ nodes { rowId userAgent ipAddress expiresAt } } } } } }"
)
ME_FRAGMENT = (
    "query Me { me { __typename ...Viewer } } "
    "fragment Viewer on User { __typename id email firstName lastName role }"
)
# PostGraphile has no auth (no viewer): `me` becomes the same user by primary key.
PGL_ME = f"query Me($id: UUID!) {{ userByRowId(rowId: $id) {{ {PGL_ME_FIELDS} }} }}"
PGL_ME_FRAGMENT = (
    "query Me($id: UUID!) { userByRowId(rowId: $id) { __typename ...Viewer } } "
    f"fragment Viewer on User {{ __typename {PGL_ME_FIELDS} }}"
)


def _pgl_users(first: int) -> str:
    return (
        f"query Users {{ allUsers(first: {first}, {PGL_ORDER}) "
        f"{{ totalCount edges {{ node {{ {PGL_USER} }} }} }} }}"
    )


@dataclass(frozen=True)
class Shape:
    """One way of asking for Q1's (``kind == "me"``) or Q2's (``"users"``) data."""

    name: str
    title: str
    kind: str
    server: Callable[[int], Request]  # page size -> our server's request
    postgraphile: Callable[[int, str], Request]  # page size, viewer's id -> PostGraphile's

    @property
    def plain(self) -> str:
        """The plain document this shape is measured against."""
        return "Q1" if self.kind == "me" else "Q2"


SHAPES: tuple[Shape, ...] = (
    Shape(
        "Q2", "the benchmark's Q2 document", "users",
        lambda n: Request(users_page(n) if n != PAGE else USERS),
        lambda n, _: Request(_pgl_users(n)),
    ),
    Shape(
        "apollo", "Apollo Client (__typename everywhere, operation name)", "users",
        lambda n: Request(_apollo(n)),
        lambda n, _: Request(_pgl_apollo(n)),
    ),
    Shape(
        "apq", "Apollo persisted query (sha256 hash) of the Apollo shape", "users",
        lambda n: Request(_apollo(n), persisted=True),
        # PostGraphile v5 has no automatic persisted queries: it gets the Apollo text.
        lambda n, _: Request(_pgl_apollo(n)),
    ),
    Shape(
        "relay", "Relay (named fragments, pageInfo, cursor)", "users",
        lambda n: Request(RELAY, {"first": n, "after": None}),
        lambda n, _: Request(PGL_RELAY, {"first": n, "after": None}),
    ),
    Shape(
        "filter", "users(filter: $filter) with a UserFilter variable", "users",
        lambda n: Request(FILTER, {"first": n, "filter": USER_FILTER}),
        lambda n, _: Request(PGL_FILTER, {"first": n, "condition": PGL_CONDITION}),
    ),
    Shape(
        "include", "sessions @include(if: $withSessions)", "users",
        lambda n: Request(INCLUDE, {"first": n, "withSessions": True}),
        lambda n, _: Request(PGL_INCLUDE, {"first": n, "withSessions": True}),
    ),
    Shape(
        "Q1", "me, plain", "me",
        lambda n: Request(ME),
        lambda n, viewer: Request(PGL_ME, {"id": viewer}),
    ),
    Shape(
        "me-fragment", "me with __typename and a fragment", "me",
        lambda n: Request(ME_FRAGMENT),
        lambda n, viewer: Request(PGL_ME_FRAGMENT, {"id": viewer}),
    ),
)  # fmt: skip
SHAPE_NAMES = tuple(s.name for s in SHAPES)
EXTRA_SHAPES = tuple(n for n in SHAPE_NAMES if n not in ("Q1", "Q2"))  # Q1 and Q2 always run


def shape(name: str) -> Shape:
    return next(s for s in SHAPES if s.name == name)


def shape_operation(s: Shape, *, token: str, first: int = PAGE) -> Operation:
    request = s.server(first)
    name = s.name if first == PAGE else f"{s.name}/{first}"
    return Operation(name, s.title, request.body(), token, request.registration())


def postgraphile_operation(s: Shape, *, viewer_id: str, first: int = PAGE) -> Operation:
    """PostGraphile's equivalent (it does no auth: the token is not sent)."""
    request = s.postgraphile(first, viewer_id)
    return Operation(s.name, s.title, request.body(), "")


# --- What both apps must agree on --------------------------------------------------------------


def summary(answer: bytes) -> dict[str, object]:
    """The users (ids in order) with their session counts and the total, or the viewer's id and
    e-mail, from either app's answer; raises ValueError on errors or an unknown shape."""
    parsed = orjson.loads(answer)
    if parsed.get("errors") or not isinstance(parsed.get("data"), dict):
        raise ValueError(f"an error answer: {answer[:300]!r}")
    (root,) = parsed["data"].values()
    if root is None:
        raise ValueError(f"no data: {answer[:300]!r}")
    if "email" in root:  # me / userByRowId
        return {"id": root.get("id", root.get("rowId")), "email": root["email"]}
    users = []
    for edge in root["edges"]:
        node = edge["node"]
        sessions = node["sessions"] if "sessions" in node else node["userSessionsByUserId"]
        if isinstance(sessions, dict):
            sessions = sessions["nodes"]
        users.append((node.get("id", node.get("rowId")), len(sessions)))
    return {"totalCount": root["totalCount"], "users": users}
