"""The `users` connection: keyset pages forwards and backwards in every order, with every
filter, stable under inserts, with NULL last logins, and with checked cursors and sizes."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from gql_api.config import Settings
from gql_api.db import Database
from tests.conftest import GraphQLClient, MadeUser, error_codes, insert_user, session_token
from tests.hardening_support import app_client, post

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ORDERS = [
    (field, direction)
    for field in ("CREATED_AT", "EMAIL", "LAST_NAME", "LAST_LOGIN_AT")
    for direction in ("ASC", "DESC")
]

PAGE = """
query($first: Int, $after: String, $last: Int, $before: String, $filter: UserFilter,
      $orderBy: UserOrder) {
  users(first: $first, after: $after, last: $last, before: $before, filter: $filter,
        orderBy: $orderBy) {
    totalCount
    edges { cursor node { id email lastName createdAt lastLoginAt } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""


async def _set(db: Database, user: MadeUser, **values: Any) -> None:
    assignments = ", ".join(f"{k} = :{k}" for k in values)
    async with db.engine.begin() as conn:
        await conn.execute(
            text(f"UPDATE users SET {assignments} WHERE id = :id"), {"id": user.id, **values}
        )


@pytest.fixture
async def people(db: Database, admin: MadeUser) -> list[MadeUser]:
    """22 users (plus the admin) with ties in every sort key and NULL last logins."""
    made = []
    last_names = ["Adams", "Baker", "Clark", "Baker", "Evans", "Adams", "Young"]
    for n in range(22):
        person = await insert_user(
            db,
            email=f"p{n:02d}-{'x' if n % 2 else 'y'}@example.com",
            first_name=f"Given{n}",
            last_name=last_names[n % len(last_names)],
            role="admin" if n % 7 == 0 else "user",
            status="inactive" if n % 5 == 0 else "active",
        )
        await _set(
            db,
            person,
            # Groups of three share created_at: the id breaks the tie.
            created_at=T0 + timedelta(hours=n // 3),
            # A third never logged in (NULL); the rest share a few instants.
            last_login_at=None if n % 3 == 0 else T0 + timedelta(days=n % 4),
            email_verified=n % 2 == 0,
        )
        made.append(person)
    await _set(db, admin, created_at=T0 - timedelta(days=1))
    return made


async def _walk(
    gql: GraphQLClient, token: str, *, size: int, backwards: bool, **variables: Any
) -> list[str]:
    """Every id, page by page; backwards pages are prepended so the result is in order."""
    ids: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page_vars = {**variables, ("last" if backwards else "first"): size}
        if cursor is not None:
            page_vars["before" if backwards else "after"] = cursor
        body = await gql(PAGE, page_vars, token=token)
        assert "errors" not in body, body
        conn = body["data"]["users"]
        page_ids = [e["node"]["id"] for e in conn["edges"]]
        info = conn["pageInfo"]
        if page_ids:
            assert info["startCursor"] == conn["edges"][0]["cursor"]
            assert info["endCursor"] == conn["edges"][-1]["cursor"]
        ids = page_ids + ids if backwards else ids + page_ids
        more = info["hasPreviousPage"] if backwards else info["hasNextPage"]
        # The other side is reported from the cursor: set exactly when one was passed.
        other = info["hasNextPage"] if backwards else info["hasPreviousPage"]
        assert other is (cursor is not None)
        pages += 1
        assert pages < 50
        if not more:
            return ids
        assert len(page_ids) == size
        cursor = info["startCursor"] if backwards else info["endCursor"]


async def _all(gql: GraphQLClient, token: str, **variables: Any) -> list[dict[str, Any]]:
    body = await gql(PAGE, {**variables, "first": 100}, token=token)
    assert "errors" not in body, body
    assert body["data"]["users"]["pageInfo"]["hasNextPage"] is False
    return [e["node"] for e in body["data"]["users"]["edges"]]


@pytest.mark.parametrize(("field", "direction"), ORDERS)
async def test_every_order_forwards_and_backwards(
    gql: GraphQLClient, admin_token: str, people: list[MadeUser], field: str, direction: str
) -> None:
    order = {"field": field, "direction": direction}
    everyone = await _all(gql, admin_token, orderBy=order)
    expected = [n["id"] for n in everyone]
    assert len(expected) == 23 and len(set(expected)) == 23
    _check_sorted(everyone, field, direction)
    for size in (1, 4, 23):
        assert await _walk(gql, admin_token, size=size, backwards=False, orderBy=order) == expected
        assert await _walk(gql, admin_token, size=size, backwards=True, orderBy=order) == expected


def _check_sorted(nodes: list[dict[str, Any]], field: str, direction: str) -> None:
    """The keys are in order; text keys are compared by the database's collation elsewhere."""
    if field == "CREATED_AT":
        keys = [datetime.fromisoformat(n["createdAt"]) for n in nodes]
    elif field == "LAST_LOGIN_AT":
        # Never logged in counts as the oldest login: first ascending, last descending.
        never = datetime.min.replace(tzinfo=UTC)
        keys = [
            datetime.fromisoformat(n["lastLoginAt"]) if n["lastLoginAt"] else never for n in nodes
        ]
        nulls = [n["lastLoginAt"] is None for n in nodes]
        assert nulls == sorted(nulls, reverse=direction == "ASC")
    else:
        return
    assert keys == sorted(keys, reverse=direction == "DESC")


async def test_default_order_is_newest_first(
    gql: GraphQLClient, admin_token: str, admin: MadeUser, people: list[MadeUser]
) -> None:
    nodes = await _all(gql, admin_token)
    _check_sorted(nodes, "CREATED_AT", "DESC")
    assert nodes[-1]["id"] == str(admin.id)


FILTERS: list[tuple[dict[str, Any], Any]] = [
    ({"role": "ADMIN"}, lambda n, u: u["role"] == "admin"),
    ({"status": "INACTIVE"}, lambda n, u: u["status"] == "inactive"),
    ({"emailVerified": True}, lambda n, u: u["email_verified"]),
    ({"search": "P1"}, lambda n, u: "p1" in u["email"]),  # case-insensitive, in the e-mail
    ({"search": "bAkEr"}, lambda n, u: u["last_name"] == "Baker"),
    ({"search": "given2"}, lambda n, u: u["first_name"].lower().startswith("given2")),
    ({"search": "%"}, lambda n, u: False),  # LIKE wildcards are matched literally
    (
        {"createdAfter": (T0 + timedelta(hours=2)).isoformat()},
        lambda n, u: u["created_at"] > T0 + timedelta(hours=2),
    ),
    (
        {"createdBefore": (T0 + timedelta(hours=2)).isoformat()},
        lambda n, u: u["created_at"] < T0 + timedelta(hours=2),
    ),
    (
        {"role": "USER", "status": "ACTIVE", "search": "example"},
        lambda n, u: u["role"] == "user" and u["status"] == "active",
    ),
]


@pytest.mark.parametrize(("where", "matches"), FILTERS)
@pytest.mark.parametrize("order", [None, {"field": "LAST_LOGIN_AT", "direction": "ASC"}])
async def test_filters_forwards_and_backwards(
    gql: GraphQLClient,
    db: Database,
    admin_token: str,
    people: list[MadeUser],
    where: dict[str, Any],
    matches: Any,
    order: dict[str, str] | None,
) -> None:
    async with db.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM users"))).mappings().all()
    expected = {str(r["id"]) for r in rows if matches(None, r)}
    variables: dict[str, Any] = {"filter": where, "orderBy": order}
    body = await gql(PAGE, {**variables, "first": 3}, token=admin_token)
    assert body["data"]["users"]["totalCount"] == len(expected)
    forwards = await _walk(gql, admin_token, size=3, backwards=False, **variables)
    backwards = await _walk(gql, admin_token, size=3, backwards=True, **variables)
    assert set(forwards) == expected
    assert forwards == backwards


@pytest.mark.parametrize(("field", "direction"), ORDERS)
async def test_pages_are_stable_under_inserts(
    gql: GraphQLClient,
    db: Database,
    admin_token: str,
    people: list[MadeUser],
    field: str,
    direction: str,
) -> None:
    order = {"field": field, "direction": direction}
    before = [n["id"] for n in await _all(gql, admin_token, orderBy=order)]
    first = await gql(PAGE, {"first": 8, "orderBy": order}, token=admin_token)
    seen = [e["node"]["id"] for e in first["data"]["users"]["edges"]]
    cursor = first["data"]["users"]["pageInfo"]["endCursor"]
    # New rows land everywhere in the order: before and after the cursor, and in its ties.
    for n, name in enumerate(["Aaron", "Baker", "Mills", "Zed"]):
        extra = await insert_user(db, email=f"{name.lower()}-new@example.com", last_name=name)
        await _set(
            db,
            extra,
            created_at=T0 + timedelta(hours=n * 2),
            last_login_at=None if n == 0 else T0 + timedelta(days=n),
        )
    while cursor is not None:
        body = await gql(PAGE, {"first": 5, "after": cursor, "orderBy": order}, token=admin_token)
        conn = body["data"]["users"]
        seen += [e["node"]["id"] for e in conn["edges"]]
        cursor = conn["pageInfo"]["endCursor"] if conn["pageInfo"]["hasNextPage"] else None
    assert len(seen) == len(set(seen)), "a row was served twice"
    assert set(before) <= set(seen), "a row was skipped"
    # The original rows keep their relative order.
    assert [i for i in seen if i in set(before)] == before


def _cursor(parts: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"first": 101}, "first"),
        ({"first": 0}, "first"),
        ({"last": -1}, "last"),
        ({"first": 1, "last": 1}, "first"),
        ({"after": "!!not base64!!"}, "after"),
        ({"after": _cursor(["users:created_at:desc", "yesterday", "x"])}, "after"),
        ({"before": _cursor(["users:created_at:desc", None, "7b0c"])}, "before"),
        ({"after": _cursor(["users:created_at:desc"])}, "after"),
        (
            {
                "after": _cursor(
                    ["users:email:asc", "a@example.com", "00000000-0000-0000-0000-000000000000"]
                )
            },
            "after",
        ),
        ({"filter": {"search": "x" * 101}}, "filter.search"),
        ({"filter": {"search": "nul\x00"}}, "filter.search"),
    ],
)
async def test_bad_arguments_are_bad_user_input(
    gql: GraphQLClient, admin_token: str, variables: dict[str, Any], field: str
) -> None:
    body = await gql(PAGE, variables, token=admin_token)
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert field in body["errors"][0]["extensions"]["fields"]


async def test_cursor_from_another_order_is_refused(
    gql: GraphQLClient, admin_token: str, people: list[MadeUser]
) -> None:
    body = await gql(PAGE, {"first": 2}, token=admin_token)
    cursor = body["data"]["users"]["pageInfo"]["endCursor"]
    orders = ({"field": "EMAIL", "direction": "DESC"}, {"field": "CREATED_AT", "direction": "ASC"})
    for order in orders:
        other = await gql(PAGE, {"first": 2, "after": cursor, "orderBy": order}, token=admin_token)
        assert error_codes(other) == ["BAD_USER_INPUT"]
        fields = other["errors"][0]["extensions"]["fields"]
        assert fields == {"after": "cursor from another ordering"}


async def test_page_size_default_and_maximum(
    gql: GraphQLClient, db: Database, settings: Settings, admin: MadeUser
) -> None:
    from tests.users_support import insert_many_users

    await insert_many_users(db, 120, sessions_each=0)
    token = await session_token(db, settings, admin)
    body = await gql(PAGE, {}, token=token)
    assert len(body["data"]["users"]["edges"]) == 20
    assert body["data"]["users"]["pageInfo"]["hasNextPage"] is True
    body = await gql(PAGE, {"first": 100}, token=token)
    assert len(body["data"]["users"]["edges"]) == 100
    body = await gql(PAGE, {"last": 100}, token=token)
    assert len(body["data"]["users"]["edges"]) == 100
    assert body["data"]["users"]["pageInfo"]["hasPreviousPage"] is True


async def test_the_page_size_setting_is_the_limit(
    db: Database, settings: Settings, admin: MadeUser
) -> None:
    """graphql.max_page_size bounds first/last (and the cost counts with it): one setting."""
    token = await session_token(db, settings, admin)
    async with app_client(db, graphql={"max_page_size": 3}) as http:
        for query in (PAGE, "query($first: Int) { auditLogs(first: $first) { totalCount } }"):
            refused = await post(http, query, {"first": 4}, token)
            assert error_codes(refused) == ["BAD_USER_INPUT"], refused
            assert refused["errors"][0]["extensions"]["fields"] == {
                "first": "must be between 1 and 3"
            }
            assert not (await post(http, query, {"first": 3}, token)).get("errors")


def test_cursors_hold_isoformat_keys_and_read_back() -> None:
    """A cursor's datetime key is written as isoformat() writes it, whatever its fraction and
    offset, and decodes to the same position (gql_api.graphql.schema.pagination)."""
    import base64
    import uuid
    from datetime import UTC, datetime, timedelta, timezone

    import orjson

    from gql_api.graphql.schema.pagination import decode_cursor, encode_cursor

    row_id = uuid.uuid4()
    for key in (
        datetime(2026, 12, 2, 16, 20, 41, 724271, tzinfo=UTC),
        datetime(2026, 12, 2, 16, 20, 41, tzinfo=UTC),
        datetime(2026, 12, 2, 16, 20, 41, 120000, tzinfo=timezone(timedelta(hours=-3))),
    ):
        cursor = encode_cursor("users:created_at:DESC", key, row_id)
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        assert orjson.loads(raw) == ["users:created_at:DESC", key.isoformat(), str(row_id)]
        decoded = decode_cursor(cursor, tag="users:created_at:DESC", kind="datetime")
        assert decoded == (key, row_id)
    text = encode_cursor("users:email:ASC", "ü@example.com", row_id)
    assert decode_cursor(text, tag="users:email:ASC", kind="text") == ("ü@example.com", row_id)


async def test_a_page_keeps_its_plan_in_postgresql(database_url: str, db: Database) -> None:
    """A page's size, role and status are written into its statement (a few values each), so
    PostgreSQL plans it once per connection: bound, it planned every page again (a custom
    plan), which was a tenth of its CPU per page."""
    from gql_api.repositories.user_listing import UserFilter, UserSortKey, list_users
    from tests.conftest import make_settings

    for n in range(3):
        await insert_user(db, first_name=f"Planned{n}")
    settings = make_settings(database_url, database={"max_open_conns": 1})
    own = Database(settings.database, database_url, None)  # one connection: one session
    try:
        filters = [UserFilter(), UserFilter(role="user", status="active"), UserFilter(role="user")]
        for where in filters:
            for _ in range(8):  # PostgreSQL weighs a custom plan for the first five
                page = await list_users(
                    own, where=where, order=UserSortKey.CREATED_AT, descending=True,
                    after=None, before=None, limit=2, from_end=False,
                )  # fmt: skip
                assert len(page.rows) == 2 and page.has_more and page.total == 3
        plans = await own.fetch(
            text(
                "SELECT statement, sum(generic_plans) AS generic, sum(custom_plans) AS custom "
                "FROM pg_prepared_statements WHERE statement LIKE '%FROM users%ORDER BY%' "
                "AND statement NOT LIKE '%pg_prepared_statements%' GROUP BY statement"
            )
        )  # asyncpg prepares a statement twice here: its first rows set the record class
    finally:
        await own.dispose()
    assert [(row.generic, row.custom) for row in plans] == [(8, 0)] * len(filters)
