"""Helpers for the second-factor tests: an injected clock, an app that uses it, and the flows
(enrol, log in, verify) over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pyotp

from gql_api.db import Database
from gql_api.web.app import create_app
from tests.conftest import GraphQLClient, make_settings

STEP = timedelta(seconds=30)

LOGIN = """
mutation($input: LoginInput!) {
  login(input: $input) {
    accessToken refreshToken
    session { id deviceInfo ipAddress userAgent }
    mfaRequired { challengeToken methods expiresAt }
  }
}"""
VERIFY = """
mutation($t: String!, $code: String, $rc: String) {
  verifyMfa(challengeToken: $t, code: $code, recoveryCode: $rc) {
    accessToken refreshToken user { id email } session { id deviceInfo ipAddress userAgent current }
  }
}"""
START = """
mutation($p: String) {
  startTotpEnrollment(password: $p) { factorId secret otpauthUri qrCodeSvg }
}"""
CONFIRM = "mutation($c: String!, $p: String) { confirmTotpEnrollment(code: $c, password: $p) }"
MY_MFA = (
    """{ me { id mfa { enabled recoveryCodesLeft factors { id kind createdAt lastUsedAt } } } }"""
)


class Clock:
    """What the service takes for now: real time shifted by ``offset``, or ``frozen``."""

    def __init__(self) -> None:
        self.offset = timedelta(0)
        self.frozen: datetime | None = None

    def __call__(self) -> datetime:
        return self.frozen if self.frozen is not None else datetime.now(UTC) + self.offset

    def freeze_at_step_start(self) -> datetime:
        """Freeze at the start of the current 30 s step (within 30 s of real time)."""
        now = datetime.now(UTC)
        self.frozen = datetime.fromtimestamp(int(now.timestamp()) // 30 * 30, UTC)
        return self.frozen


def code_at(secret: str, moment: datetime) -> str:
    """What an authenticator app whose clock reads ``moment`` shows."""
    return pyotp.TOTP(secret).at(moment)


@asynccontextmanager
async def mfa_app(
    db: Database, clock: Clock, *, client: tuple[str, int] = ("127.0.0.1", 40000), **overrides: Any
) -> AsyncIterator[GraphQLClient]:
    """The app on the test database, seeing ``clock`` as the time."""
    settings = make_settings(db.url, **overrides).model_copy(update={"clock": clock})
    app = create_app(settings, db)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield GraphQLClient(http)


def data_of(body: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]
    return result


def error_of(body: dict[str, Any]) -> dict[str, Any]:
    """The single error of a failed request, with its extensions."""
    assert body.get("errors"), body
    assert len(body["errors"]) == 1, body
    error: dict[str, Any] = body["errors"][0]
    return error


async def enrol(gql: GraphQLClient, token: str, clock: Clock) -> tuple[str, list[str], str]:
    """Enrol a TOTP factor for the token's user; returns (secret, recovery codes, factor id)."""
    started = data_of(await gql(START, token=token))["startTotpEnrollment"]
    codes = data_of(await gql(CONFIRM, {"c": code_at(started["secret"], clock())}, token=token))[
        "confirmTotpEnrollment"
    ]
    return started["secret"], codes, started["factorId"]


async def login(gql: GraphQLClient, email: str, password: str, **headers: str) -> dict[str, Any]:
    variables = {"input": {"email": email, "password": password, "deviceInfo": {"app": "t"}}}
    return await gql(LOGIN, variables, headers=headers or None)


async def challenge(gql: GraphQLClient, email: str, password: str) -> str:
    result = data_of(await login(gql, email, password))["login"]
    assert result["accessToken"] is None and result["mfaRequired"] is not None, result
    token: str = result["mfaRequired"]["challengeToken"]
    return token


async def verify(
    gql: GraphQLClient,
    token: str,
    *,
    code: str | None = None,
    recovery_code: str | None = None,
    **headers: str,
) -> dict[str, Any]:
    return await gql(
        VERIFY, {"t": token, "code": code, "rc": recovery_code}, headers=headers or None
    )
