"""Logs: JSON in production, readable text elsewhere, the request on every line, no secrets."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from gql_api.config import Settings
from gql_api.db import Database
from gql_api.observability.logs import configure_logging, scrub
from tests.auth_support import ok_data
from tests.conftest import GraphQLClient, MadeUser, make_settings


@pytest.fixture
def log_output(database_url: str) -> Iterator[io.StringIO]:
    """The service's own handler, JSON, at DEBUG (SQL statements included), into a buffer."""
    settings = make_settings(
        database_url, logging={"level": "debug", "format": "json"}, database={"log_level": "debug"}
    )
    yield from _installed(settings)


def _installed(settings: Settings) -> Iterator[io.StringIO]:
    root, sql = logging.getLogger(), logging.getLogger("sqlalchemy.engine")
    saved = (root.level, sql.level, logging.getLogger("uvicorn.access").disabled)
    stream = io.StringIO()
    handler = configure_logging(settings, stream)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        sql.setLevel(saved[1])
        logging.getLogger("uvicorn.access").disabled = saved[2]


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]


async def test_request_id_round_trip_and_on_every_line(
    client: httpx.AsyncClient, user: MadeUser, user_token: str, log_output: io.StringIO
) -> None:
    response = await client.post(
        "/graphql",
        json={"query": "query WhoAmI { me { id } }"},
        headers={"X-Request-ID": "req-abc-123", "Authorization": f"Bearer {user_token}"},
    )
    assert response.headers["x-request-id"] == "req-abc-123"
    generated = await client.get("/healthz")
    assert len(generated.headers["x-request-id"]) == 32
    too_long = await client.get("/healthz", headers={"X-Request-ID": "x" * 200})
    assert too_long.headers["x-request-id"] != "x" * 200

    lines = [line for line in _lines(log_output) if line.get("request_id") == "req-abc-123"]
    assert len(lines) >= 2, log_output.getvalue()  # SQL statements and the access line at least
    for line in lines:
        assert line["duration_ms"] >= 0
        assert {"operation", "user_id"} <= set(line)  # null before they are known
    access = [line for line in lines if line["logger"] == "gql_api.access"]
    assert len(access) == 1
    assert access[0]["operation"] == "WhoAmI"
    assert access[0]["user_id"] == str(user.id)
    assert access[0]["msg"] == "POST /graphql 200"
    assert access[0]["status"] == 200
    assert access[0]["level"] == "info"
    # SQL is logged (database.log_level: debug) but never with its parameters.
    sql = [line for line in lines if line["logger"].startswith("sqlalchemy.engine")]
    assert sql, "expected SQL statements at database.log_level debug"


async def test_the_access_line_skips_logging_only_when_nothing_else_listens(
    client: httpx.AsyncClient, user: MadeUser, user_token: str, log_output: io.StringIO
) -> None:
    """Written straight to the service's handler (no log record) while it is the only one, the
    access line is the line logging writes once anything else listens."""
    root = logging.getLogger()
    made: list[str] = []
    factory = logging.getLogRecordFactory()

    def counting(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        made.append(record.name)
        return record

    async def access_line(request_id: str) -> dict[str, Any]:
        response = await client.post(
            "/graphql",
            json={"query": "query WhoAmI { me { id } }"},
            headers={"X-Request-ID": request_id, "Authorization": f"Bearer {user_token}"},
        )
        assert response.status_code == 200, response.text
        (line,) = [
            line
            for line in _lines(log_output)
            if line.get("request_id") == request_id and line["logger"] == "gql_api.access"
        ]
        return line

    others = [h for h in root.handlers if h.get_name() != "gql_api"]  # pytest's capture
    logging.setLogRecordFactory(counting)
    try:
        for handler in others:
            root.removeHandler(handler)
        try:
            alone = await access_line("alone")
            assert "gql_api.access" not in made, made  # no record: written directly
            kept: list[logging.LogRecord] = []
            listening = logging.Handler()
            listening.emit = kept.append  # type: ignore[method-assign]
            root.addHandler(listening)
            try:
                made.clear()
                heard = await access_line("heard")
            finally:
                root.removeHandler(listening)
            assert "gql_api.access" in made
            assert [r.getMessage() for r in kept if r.name == "gql_api.access"] == [
                "POST /graphql 200"
            ]
        finally:
            for handler in others:
                root.addHandler(handler)
    finally:
        logging.setLogRecordFactory(factory)
    varying = {"ts", "duration_ms", "request_id"}
    assert list(alone) == list(heard)  # the same keys, in the same order
    assert {k: v for k, v in alone.items() if k not in varying} == {
        k: v for k, v in heard.items() if k not in varying
    }
    assert alone["user_id"] == str(user.id) and alone["operation"] == "WhoAmI"
    assert alone["status"] == 200 and alone["msg"] == "POST /graphql 200"
    assert alone["level"] == "info" and alone["duration_ms"] >= 0


def test_text_format_in_development_and_json_in_production(database_url: str) -> None:
    for env, expect_json in (("development", False), ("production", True)):
        settings = make_settings(database_url, logging={"format": "auto", "level": "info"})
        settings.env = settings.env.__class__(env)
        for stream in _installed(settings):
            logging.getLogger("gql_api.test").info("hello %s", "there", extra={"answer": 42})
            logging.getLogger("gql_api.test").debug("below the level")
            output = stream.getvalue().strip().splitlines()
            assert len(output) == 1, output
            if expect_json:
                line = json.loads(output[0])
                assert line["msg"] == "hello there" and line["answer"] == 42
                assert line["level"] == "info" and line["logger"] == "gql_api.test"
            else:
                assert output[0].endswith("INFO    gql_api.test: hello there answer=42")


def test_scrub_removes_what_looks_like_a_secret() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    bcrypt = "$2b$12$" + "a" * 53
    digest = "0f" * 32
    line = scrub(
        f"password=hunter2 {{'newPassword': 'abc def'}} Authorization: Bearer {jwt} "
        f"{bcrypt} {digest} refresh_token: QWxhZGRpbjpvcGVu request=0123456789abcdef"
    )
    for secret in ("hunter2", "abc def", jwt, bcrypt, digest, "QWxhZGRpbjpvcGVu"):
        assert secret not in line
    assert "request=0123456789abcdef" in line  # request ids stay


PAYLOAD = "accessToken refreshToken user { id }"


async def test_no_secrets_in_logs_after_a_full_auth_flow(
    gql: GraphQLClient,
    db: Database,
    caplog: pytest.LogCaptureFixture,
    log_output: io.StringIO,
) -> None:
    caplog.set_level(logging.DEBUG)
    password, new_password = "Correct-Horse-77-battery", "Another-Staple-88-orbit"
    registered = await ok_data(
        gql,
        f"mutation($i: RegisterInput!) {{ register(input: $i) {{ {PAYLOAD} }} }}",
        {
            "i": {
                "email": "flow@example.com",
                "password": password,
                "firstName": "F",
                "lastName": "L",
            }
        },
    )
    wrong = await gql(
        "mutation($i: LoginInput!) { login(input: $i) { accessToken } }",
        {"i": {"email": "flow@example.com", "password": password + "-wrong"}},
    )
    assert wrong.get("errors")
    logged_in = await ok_data(
        gql,
        f"mutation($i: LoginInput!) {{ login(input: $i) {{ {PAYLOAD} }} }}",
        {"i": {"email": "flow@example.com", "password": password}},
    )
    access = logged_in["login"]["accessToken"]
    await ok_data(gql, "{ me { id email } }", token=access)
    refreshed = await ok_data(
        gql,
        f"mutation($t: String!) {{ refreshToken(refreshToken: $t) {{ {PAYLOAD} }} }}",
        {"t": logged_in["login"]["refreshToken"]},
    )
    access = refreshed["refreshToken"]["accessToken"]
    changed = await ok_data(
        gql,
        f"mutation($c: String!, $n: String!) {{ changePassword(currentPassword: $c, "
        f"newPassword: $n) {{ {PAYLOAD} }} }}",
        {"c": password, "n": new_password},
        token=access,
    )
    access = changed["changePassword"]["accessToken"]
    assert (await ok_data(gql, "mutation { logout }", token=access))["logout"] is True

    secrets = {password, new_password, password + "-wrong"}
    for payload in (
        registered["register"],
        logged_in["login"],
        refreshed["refreshToken"],
        changed["changePassword"],
    ):
        secrets |= {payload["accessToken"], payload["refreshToken"]}
    async with db.engine.connect() as conn:
        secrets |= set((await conn.execute(text("SELECT password_hash FROM users"))).scalars())
        for column in ("token_hash", "previous_token_hash"):
            secrets |= {
                v
                for v in (await conn.execute(text(f"SELECT {column} FROM user_sessions"))).scalars()
                if v
            }
        secrets |= set(
            (await conn.execute(text("SELECT token_hash FROM one_time_tokens"))).scalars()
        )
    assert len(secrets) >= 12

    captured = "\n".join(
        [r.getMessage() + (r.exc_text or "") for r in caplog.records] + [log_output.getvalue()]
    )
    assert len(caplog.records) > 20  # DEBUG really was on: SQL, access lines, auth events
    leaked = [s for s in secrets if s in captured]
    assert not leaked, f"secrets in the logs: {len(leaked)}"


def test_records_skip_what_no_line_shows(database_url: str) -> None:
    """The caller's file and line, thread and process are never in a line, so records do not
    collect them (the logging HOWTO's optimisation switches: the access line is on every
    request, and the walk up an async stack cost a fifth of a ``me`` request's CPU)."""
    settings = make_settings(database_url, logging={"format": "json", "level": "info"})
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    for stream in _installed(settings):
        keep = Keep()
        logging.getLogger().addHandler(keep)
        try:
            logging.getLogger("gql_api.test").info("hello")
        finally:
            logging.getLogger().removeHandler(keep)
        assert json.loads(stream.getvalue())["msg"] == "hello"
    (record,) = records
    assert record.funcName == "(unknown function)" and record.pathname == "(unknown file)"
    assert record.thread is None
    assert record.process is None
