"""Free-form JSON inputs (``ProfileInput.preferences`` in updateMe and createUser,
``LoginInput.deviceInfo``): bounded in depth, size and key count on the way in, with
BAD_USER_INPUT naming the field and nothing stored; and values stored before these bounds
existed (written here straight with SQL) are read back without a 500 wherever they appear."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from gql_api.db import Database
from tests.auth_support import LOGIN
from tests.conftest import MadeUser, error_codes

UPDATE_ME = """
mutation($input: UpdateMeInput!) { updateMe(input: $input) { id profile { preferences } } }
"""
ME = "{ me { id email profile { preferences } sessions { deviceInfo } } }"
USERS_PAGE = "{ users(first: 10) { edges { node { email profile { preferences } } } } }"
AUDIT_PAGE = "{ auditLogs(first: 10) { edges { node { action changes } } } }"
NUMBER_RULE = "must hold numbers between -2^63 and 2^63 only"
UNREADABLE = {"__unreadable": "this stored value cannot be sent; write a new value to replace it"}


def nested_text(depth: int) -> str:
    """``{"a":{"a":...{}}}``: ``depth`` objects inside each other, as JSON text (the json module
    cannot write values this deep, so the text is built directly)."""
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


async def post_raw(
    client: httpx.AsyncClient, query: str, variables_text: str, token: str | None = None
) -> httpx.Response:
    """Post a body whose variables are given as JSON text, however deep."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = '{"query":' + json.dumps(query) + ',"variables":' + variables_text + "}"
    return await client.post("/graphql", content=body.encode(), headers=headers)


async def scalar(db: Database, sql: str, **params: Any) -> Any:
    async with db.engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar_one()


async def post(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None, token: str
) -> dict[str, Any]:
    response = await client.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def refused(body: dict[str, Any], field: str) -> str:
    """The message for ``field`` of a BAD_USER_INPUT answer, checking nothing else failed."""
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    fields = body["errors"][0]["extensions"]["fields"]
    assert list(fields) == [field], fields
    message: str = fields[field]
    return message


# --- on the way in ---------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [33, 250, 990])
async def test_deep_preferences_are_refused(
    client: httpx.AsyncClient, db: Database, user: MadeUser, user_token: str, depth: int
) -> None:
    variables = '{"input":{"profile":{"preferences":' + nested_text(depth) + "}}}"
    response = await post_raw(client, UPDATE_ME, variables, user_token)
    assert response.status_code == 200, response.text[:300]
    message = refused(response.json(), "profile.preferences")
    assert message == "must be nested at most 32 levels deep"
    assert await scalar(db, "SELECT preferences FROM user_profiles") == {}
    assert await scalar(db, "SELECT count(*) FROM audit_logs") == 0


@pytest.mark.parametrize("depth", [33, 250, 990])
async def test_deep_device_info_is_refused(
    client: httpx.AsyncClient, db: Database, user: MadeUser, depth: int
) -> None:
    variables = (
        '{"input":{"email":"user@example.com","password":"correct horse battery staple",'
        '"deviceInfo":' + nested_text(depth) + "}}"
    )
    response = await post_raw(client, LOGIN, variables)
    assert response.status_code == 200, response.text[:300]
    assert refused(response.json(), "deviceInfo") == "must be nested at most 32 levels deep"
    assert await scalar(db, "SELECT count(*) FROM user_sessions") == 0


async def test_create_user_refuses_deep_preferences_too(
    client: httpx.AsyncClient, db: Database, admin_token: str
) -> None:
    mutation = "mutation($input: CreateUserInput!) { createUser(input: $input) { id } }"
    variables = (
        '{"input":{"email":"new@example.com","password":"a sufficiently long passphrase",'
        '"firstName":"N","lastName":"P","profile":{"preferences":' + nested_text(250) + "}}}"
    )
    response = await post_raw(client, mutation, variables, admin_token)
    assert response.status_code == 200, response.text[:300]
    assert (
        refused(response.json(), "profile.preferences") == "must be nested at most 32 levels deep"
    )
    assert await scalar(db, "SELECT count(*) FROM users WHERE email = 'new@example.com'") == 0


async def test_a_body_nested_beyond_the_decoder_is_refused_at_the_edge(
    client: httpx.AsyncClient, db: Database, user: MadeUser, user_token: str
) -> None:
    """100,000 levels never become a value: the body decoder (orjson, 1,024 levels at most) refuses
    it with a 400, so no field can be named; what matters is no 500 and nothing stored."""
    for query, variables, token in [
        (
            UPDATE_ME,
            '{"input":{"profile":{"preferences":' + nested_text(100_000) + "}}}",
            user_token,
        ),
        (
            LOGIN,
            '{"input":{"email":"user@example.com","password":"correct horse battery staple",'
            '"deviceInfo":' + nested_text(100_000) + "}}",
            None,
        ),
    ]:
        response = await post_raw(client, query, variables, token)
        assert response.status_code == 400, response.text[:300]
    assert await scalar(db, "SELECT preferences FROM user_profiles") == {}
    assert await scalar(db, "SELECT count(*) FROM user_sessions") == 1  # the token's own


async def test_deep_literal_in_the_document_is_refused(
    client: httpx.AsyncClient, db: Database, user: MadeUser, user_token: str
) -> None:
    literal = "{a: " * 33 + "1" + "}" * 33
    body = await post(
        client,
        f"mutation {{ updateMe(input: {{profile: {{preferences: {literal}}}}}) {{ id }} }}",
        None,
        user_token,
    )
    assert refused(body, "profile.preferences") == "must be nested at most 32 levels deep"
    assert await scalar(db, "SELECT preferences FROM user_profiles") == {}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({f"k{i}": i for i in range(300)}, "must have at most 256 keys"),
        ({f"key-{i:04}": "x" * 30 for i in range(200)}, "must be at most 8192 bytes of JSON"),
        ({"s": "x" * 100_000}, "must be at most 8192 bytes of JSON"),
        ({"list": [0] * 50_000}, "must be at most 8192 bytes of JSON"),
        ({"n": 10**30}, NUMBER_RULE),
        ({"n": 1e30}, NUMBER_RULE),
        ({"s": "a\x00b"}, "must not contain NUL characters"),
    ],
)
async def test_wide_or_large_preferences_are_refused(
    client: httpx.AsyncClient,
    db: Database,
    user: MadeUser,
    user_token: str,
    value: Any,
    message: str,
) -> None:
    body = await post(client, UPDATE_ME, {"input": {"profile": {"preferences": value}}}, user_token)
    assert refused(body, "profile.preferences") == message
    assert await scalar(db, "SELECT preferences FROM user_profiles") == {}


async def test_numbers_that_cannot_be_stored_or_sent_are_refused(
    client: httpx.AsyncClient, db: Database, user: MadeUser, user_token: str
) -> None:
    for literal, message in [
        ("1" + "0" * 30, NUMBER_RULE),
        ("1e30", NUMBER_RULE),
        ("1e400", NUMBER_RULE),
    ]:
        mutation = "mutation { updateMe(input: {profile: {preferences: {n: %s}}}) { id } }"
        body = await post(client, mutation % literal, None, user_token)
        assert refused(body, "profile.preferences") == message
    assert await scalar(db, "SELECT preferences FROM user_profiles") == {}


async def test_wide_device_info_is_refused(
    client: httpx.AsyncClient, db: Database, user: MadeUser
) -> None:
    for device in ({f"k{i}": 1 for i in range(100)}, {"ua": "x" * 5000}):
        variables = {
            "input": {
                "email": user.email,
                "password": user.password,
                "deviceInfo": device,
            }
        }
        response = await client.post("/graphql", json={"query": LOGIN, "variables": variables})
        assert response.status_code == 200
        refused(response.json(), "deviceInfo")
    assert await scalar(db, "SELECT count(*) FROM user_sessions") == 0


async def test_legitimate_nested_values_are_stored_and_read_back(
    client: httpx.AsyncClient, db: Database, user: MadeUser, user_token: str
) -> None:
    preferences = {"ui": {"theme": {"colors": {"accent": ["#fff", 1.5, True, None]}}}}
    body = await post(
        client, UPDATE_ME, {"input": {"profile": {"preferences": preferences}}}, user_token
    )
    assert "errors" not in body, body
    assert body["data"]["updateMe"]["profile"]["preferences"] == preferences
    device = {"app": {"name": "web", "build": {"n": 5, "tags": ["a"]}}}
    logged_in = await client.post(
        "/graphql",
        json={
            "query": LOGIN,
            "variables": {
                "input": {"email": user.email, "password": user.password, "deviceInfo": device}
            },
        },
    )
    assert "errors" not in logged_in.json(), logged_in.text
    me = await post(client, ME, None, user_token)
    assert me["data"]["me"]["profile"]["preferences"] == preferences
    assert device in [s["deviceInfo"] for s in me["data"]["me"]["sessions"]]


# --- values stored before the bounds existed -------------------------------------------------


@pytest.mark.parametrize(
    "deep",
    [nested_text(300), nested_text(900), '{"n": 1e30}'],  # JSONB reads 1e30 back as an integer
    ids=["300-levels", "900-levels", "huge-number"],
)
async def test_legacy_values_that_cannot_be_sent_are_read_without_a_500(
    client: httpx.AsyncClient,
    db: Database,
    user: MadeUser,
    user_token: str,
    admin: MadeUser,
    admin_token: str,
    deep: str,
) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(
            text("UPDATE user_profiles SET preferences = CAST(:v AS jsonb) WHERE user_id = :u"),
            {"v": deep, "u": user.id},
        )
        await conn.execute(
            text("UPDATE user_sessions SET device_info = CAST(:v AS jsonb)"), {"v": deep}
        )
        await conn.execute(
            text(
                "INSERT INTO audit_logs (action, target_id, changes) "
                "VALUES ('user.profile_updated', :u, CAST(:c AS jsonb))"
            ),
            {"u": user.id, "c": '{"profile.preferences":{"old":{},"new":' + deep + "}}"},
        )

    me = await post(client, ME, None, user_token)
    assert "errors" not in me, me
    assert me["data"]["me"]["email"] == user.email
    assert me["data"]["me"]["profile"]["preferences"] == UNREADABLE
    assert me["data"]["me"]["sessions"] == [{"deviceInfo": UNREADABLE}]

    page = await post(client, USERS_PAGE, None, admin_token)
    assert "errors" not in page, page
    by_email = {e["node"]["email"]: e["node"]["profile"] for e in page["data"]["users"]["edges"]}
    assert by_email == {user.email: {"preferences": UNREADABLE}, admin.email: {"preferences": {}}}

    audit = await post(client, AUDIT_PAGE, None, admin_token)
    assert "errors" not in audit, audit
    assert [e["node"]["changes"] for e in audit["data"]["auditLogs"]["edges"]] == [UNREADABLE]


async def test_replacing_a_legacy_deep_value_records_a_readable_audit_entry(
    client: httpx.AsyncClient, db: Database, user: MadeUser, user_token: str, admin_token: str
) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(
            text("UPDATE user_profiles SET preferences = CAST(:v AS jsonb)"),
            {"v": nested_text(300)},
        )
    body = await post(
        client, UPDATE_ME, {"input": {"profile": {"preferences": {"theme": "dark"}}}}, user_token
    )
    assert "errors" not in body, body
    assert body["data"]["updateMe"]["profile"]["preferences"] == {"theme": "dark"}
    audit = await post(client, AUDIT_PAGE, None, admin_token)
    assert "errors" not in audit, audit
    [entry] = [e["node"] for e in audit["data"]["auditLogs"]["edges"]]
    assert entry["changes"] == {
        "profile.preferences": {
            "old": "(not recorded: the value must be nested at most 32 levels deep)",
            "new": {"theme": "dark"},
        }
    }


@pytest.mark.parametrize(
    "stored",
    [
        '{"theme": "dark", "n": [1, 2.5, -3e-7, true, null]}',
        '{"big": 123456789012345678901234567890}',  # orjson alone: a float
        '{"big": -9223372036854775809, "u64": 18446744073709551616}',
        '{"huge": 1e400}',  # orjson alone: refused
        '{"text": "\\u00e9 \u2713 \\n", "deep": [[[[{"a": {}}]]]]}',
        '{"json": "[1e400]", "exp": 1.5e308, "small": 5e-324}',
        '{"id": "12345678901234567890"}',  # digits inside a string: same either way
    ],
)
async def test_stored_json_reads_back_exactly_as_the_standard_library_reads_it(
    db: Database, stored: str
) -> None:
    """Columns of type json(b) are decoded with orjson where it agrees with ``json.loads``,
    and with ``json.loads`` where it does not (integers beyond 64 bits, huge numbers)."""
    import json

    from sqlalchemy import text

    async with db.engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT CAST(:v AS jsonb) AS value, CAST(:v AS jsonb)::text AS stored"),
                {"v": stored},
            )
        ).one()
    value, expected = row.value, json.loads(row.stored)
    assert value == expected and repr(value) == repr(expected)
