"""One pipeline whatever executes a document: the same documents through an app with the planned
executor (``graphql.fast_execution: true``) and one without answer with the same status, body and
headers, count the same metrics, write the same log lines and send the same SQL statements, so a
document that fails while it runs on the planned executor ran there once and was answered there."""

from __future__ import annotations

import logging
import re
from collections import Counter
from typing import Any

import httpx
import pytest

from gql_api.db import Database
from tests.conftest import insert_user, session_token
from tests.hardening_support import app_client
from tests.users_support import count_statements, forget_session_checks

# (document, variables, caller): planned and not, answered with and without errors.
DOCUMENTS: list[tuple[str, dict[str, Any] | None, str]] = [
    ("{ me { id email role } }", None, "user"),
    ("query Me { me { id email } }", None, "anonymous"),
    ("query Me { me { id email } }", None, "bad token"),
    # An error in a nullable field after a sibling read the database.
    (
        'query Two { a: user(id: "OTHER") { email } b: user(id: "not-a-uuid") { email } }',
        None,
        "admin",
    ),
    ('{ a: user(id: "OTHER") { email } b: user(id: "SELF") { email } }', None, "user"),
    # An error in a non-null root field: data is null.
    ("query Page { me { id } users(first: 2) { totalCount } }", None, "user"),
    ('{ users(first: 1, after: "garbage") { totalCount } }', None, "admin"),
    ("{ users(first: 101) { totalCount } }", None, "admin"),
    ("query V($n: Int) { users(first: $n) { totalCount } }", {"n": "x"}, "admin"),
    ("query V($n: Int!) { users(first: $n) { totalCount } }", None, "admin"),
    ("{ users(first: 2) { edges { node { email profile { bio } } } } }", None, "admin"),
    ("{ me { ...F } } fragment F on User { id }", None, "user"),
    ("{ nope }", None, "user"),
    ("{ __schema { queryType { name } } }", None, "user"),
    ("{ me { id } ", None, "user"),
]
ACCEPTS = ["application/json", "application/graphql-response+json"]
# Headers that differ between any two responses.
VARYING = {"x-request-id", "date"}
METRIC = re.compile(r"^(gql_api_graphql_(?:requests|errors)_total\{[^}]*\}) (\S+)$", re.M)
SELECT_LIST = re.compile(r"^SELECT .*?\sFROM", re.S)


async def _world(db: Database) -> dict[str, Any]:
    from tests.conftest import make_settings

    settings = make_settings(db.url)
    admin = await insert_user(db, email="admin@example.com", role="admin")
    user = await insert_user(db, email="user@example.com")
    other = await insert_user(db, email="other@example.com")
    return {
        "ids": {"SELF": str(user.id), "OTHER": str(other.id)},
        "tokens": {
            "admin": await session_token(db, settings, admin),
            "user": await session_token(db, settings, user),
            "anonymous": None,
            "bad token": "x.y.z",
        },
    }


async def _metrics(http: httpx.AsyncClient) -> Counter[str]:
    text = (await http.get("/metrics")).text
    return Counter({name: float(value) for name, value in METRIC.findall(text)})


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name != "gql_api.access":  # its duration differs; its status is compared
            self.lines.append(f"{record.name} {record.levelname} {record.getMessage()}")


async def _answer(
    http: httpx.AsyncClient, db: Database, body: dict[str, Any], headers: dict[str, str]
) -> dict[str, Any]:
    handler = _Lines()
    logging.getLogger().addHandler(handler)
    await forget_session_checks(db)  # both executors' requests check the session alike
    before = await _metrics(http)
    try:
        with count_statements(db) as statements:
            response = await http.post("/graphql", json=body, headers=headers)
    finally:
        logging.getLogger().removeHandler(handler)
    after = await _metrics(http)
    return {
        "status": response.status_code,
        "body": response.json(),
        "headers": {k: v for k, v in response.headers.items() if k not in VARYING},
        "metrics": {k: after[k] - before[k] for k in after if after[k] != before[k]},
        "logs": handler.lines,
        # The same statements, but for their select lists: the planned executor reads only the
        # columns a relation's selection shows (test_graphql_planned pins which).
        "statements": [SELECT_LIST.sub("SELECT ... FROM", s) for s in statements],
    }


@pytest.mark.parametrize("accept", ACCEPTS)
async def test_a_document_is_answered_alike_by_either_executor(db: Database, accept: str) -> None:
    world = await _world(db)
    async with (
        app_client(db, graphql={"fast_execution": True}) as planned,
        app_client(db, graphql={"fast_execution": False}) as generic,
    ):
        for document, variables, caller in DOCUMENTS:
            for name, value in world["ids"].items():
                document = document.replace(f'"{name}"', f'"{value}"')
            token = world["tokens"][caller]
            headers = {"Accept": accept, **({"Authorization": f"Bearer {token}"} if token else {})}
            body = {"query": document, "variables": variables or {}}
            a = await _answer(planned, db, body, headers)
            b = await _answer(generic, db, body, headers)
            assert a == b, (document, caller)


async def test_an_error_in_a_planned_document_is_answered_by_the_plan_once(db: Database) -> None:
    world = await _world(db)
    other = world["ids"]["OTHER"]
    document = f'query Two {{ a: user(id: "{other}") {{ email }} b: user(id: "x") {{ email }} }}'
    headers = {"Authorization": f"Bearer {world['tokens']['admin']}"}
    async with app_client(db, graphql={"fast_execution": True}) as planned:
        with count_statements(db) as statements:
            response = await planned.post("/graphql", json={"query": document}, headers=headers)
    body = response.json()
    assert body["data"] == {"a": {"email": "other@example.com"}, "b": None}
    assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [
        (["b"], "BAD_USER_INPUT")
    ]
    # The caller's token checked once, the other user read once: nothing ran twice.
    assert len(statements) == 2, statements
