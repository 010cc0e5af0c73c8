"""Helpers for the authentication tests: GraphQL documents, a second app with other settings,
a real SMTP server (aiosmtpd) and database peeks."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import text

from gql_api.db import Database
from gql_api.web.app import create_app
from tests.conftest import GraphQLClient, make_settings
from tests.server_support import free_port

PAYLOAD = """
    accessToken refreshToken tokenType expiresIn
    user { id email firstName lastName loginCount lastLoginAt passwordChangedAt emailVerified }
    session { id deviceInfo ipAddress userAgent current expiresAt }
"""
REGISTER = f"""
mutation($input: RegisterInput!) {{ register(input: $input) {{ {PAYLOAD} }} }}
"""
LOGIN = f"""
mutation($input: LoginInput!) {{ login(input: $input) {{ {PAYLOAD} }} }}
"""
REFRESH = f"""
mutation($t: String!) {{ refreshToken(refreshToken: $t) {{ {PAYLOAD} }} }}
"""
ME = "{ me { id email } }"
STRONG_PASSWORD = "tangerine-Velvet-42-orbit"


async def register(
    gql: GraphQLClient, email_address: str, password: str = STRONG_PASSWORD, **extra: Any
) -> dict[str, Any]:
    variables = {
        "input": {
            "email": email_address,
            "password": password,
            "firstName": "Reg",
            "lastName": "Ister",
        }
    }
    variables["input"].update(extra)
    return await gql(REGISTER, variables)


async def login(
    gql: GraphQLClient,
    email_address: str,
    password: str,
    device_info: Any = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    variables = {"input": {"email": email_address, "password": password, "deviceInfo": device_info}}
    return await gql(LOGIN, variables, headers=headers)


def payload(body: dict[str, Any], field: str) -> dict[str, Any]:
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"][field]
    return result


@asynccontextmanager
async def other_app(
    database_url: str,
    db: Database,
    *,
    client: tuple[str, int] = ("127.0.0.1", 40000),
    **overrides: Any,
) -> AsyncIterator[GraphQLClient]:
    """The app with other settings (limits, mail, proxies) on the test database."""
    settings = make_settings(database_url, **overrides)
    app = create_app(settings, db)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield GraphQLClient(http)


async def scalar(db: Database, sql: str, **params: Any) -> Any:
    async with db.engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


async def execute(db: Database, sql: str, **params: Any) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text(sql), params)


async def ok_data(
    gql: GraphQLClient,
    query: str,
    variables: dict[str, Any] | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    """The ``data`` of a request that must succeed."""
    body = await gql(query, variables, token=token)
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


async def audit_actions(db: Database) -> list[str]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(text("SELECT action FROM audit_logs ORDER BY created_at, action"))
        return [row[0] for row in rows]


# --- a real SMTP server ---


class Inbox:
    """aiosmtpd handler keeping every received message."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 Message accepted for delivery"

    def token(self, index: int = -1) -> str:
        body = self.messages[index].get_content()
        match = re.search(r"token=([A-Za-z0-9_\-]+)", body)
        assert match, body
        return match.group(1)


class SmtpServer:
    def __init__(self) -> None:
        self.inbox = Inbox()
        self.port = free_port()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)

    @property
    def mail_settings(self) -> dict[str, Any]:
        return {"smtp_host": "127.0.0.1", "smtp_port": self.port, "public_url": "https://app.test"}
