"""Mail limits: password-reset and verification mails per recipient and per client address,
counted in PostgreSQL, with a real SMTP server (aiosmtpd on 127.0.0.1) counting what is sent.

A reset request answers ``true`` whatever happens to the recipient's share, and counts alike
whether the address has an account or not; the client address's limit is ``RATE_LIMITED``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from gql_api.db import Database
from gql_api.ops.maintenance import cleanup_expired
from tests.auth_support import SmtpServer, execute, other_app, scalar
from tests.conftest import (
    GraphQLClient,
    MadeUser,
    error_codes,
    insert_user,
    make_settings,
    session_token,
)

REQUEST_RESET = "mutation($e: String!) { requestPasswordReset(email: $e) }"
REQUEST_VERIFY = "mutation { requestEmailVerification }"
LIMITS = {"mail_max_per_recipient": 3, "mail_max_per_address": 8}


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.controller.start()
    try:
        yield server
    finally:
        server.controller.stop()


@pytest.fixture
async def mail_gql(
    smtp: SmtpServer, database_url: str, db: Database
) -> AsyncIterator[GraphQLClient]:
    async with other_app(database_url, db, mail=smtp.mail_settings, auth=LIMITS) as gql:
        yield gql


def _recipients(smtp: SmtpServer) -> list[str]:
    return [str(message["To"]) for message in smtp.inbox.messages]


async def _reset(gql: GraphQLClient, email: str) -> dict[str, Any]:
    body: dict[str, Any] = await gql(REQUEST_RESET, {"e": email})
    return body


async def test_reset_mails_per_recipient_stop_silently(
    mail_gql: GraphQLClient, smtp: SmtpServer, db: Database, user: MadeUser
) -> None:
    for _ in range(6):
        assert await _reset(mail_gql, user.email) == {"data": {"requestPasswordReset": True}}
    assert _recipients(smtp) == [user.email] * 3
    # The last of the three links is the one that works (each new one replaces the older).
    assert await scalar(db, "SELECT count(*) FROM one_time_tokens WHERE used_at IS NULL") == 1


async def test_addresses_without_an_account_are_counted_alike(
    mail_gql: GraphQLClient, smtp: SmtpServer, db: Database
) -> None:
    ghost = "ghost@example.com"
    for _ in range(3):
        assert await _reset(mail_gql, ghost) == {"data": {"requestPasswordReset": True}}
    assert smtp.inbox.messages == []
    # The address spent its share before it had an account: no mail now either.
    await insert_user(db, email=ghost)
    assert await _reset(mail_gql, ghost) == {"data": {"requestPasswordReset": True}}
    assert smtp.inbox.messages == []
    # Another address is not affected.
    other = await insert_user(db, email="other@example.com")
    assert await _reset(mail_gql, other.email) == {"data": {"requestPasswordReset": True}}
    assert _recipients(smtp) == [other.email]


async def test_reset_requests_per_client_address_are_rate_limited(
    smtp: SmtpServer, database_url: str, db: Database
) -> None:
    settings: dict[str, Any] = {"mail": smtp.mail_settings, "auth": LIMITS}
    users = [await insert_user(db, email=f"u{i}@example.com") for i in range(10)]
    async with other_app(database_url, db, client=("10.0.0.1", 5000), **settings) as gql:
        for made in users[:8]:
            assert await _reset(gql, made.email) == {"data": {"requestPasswordReset": True}}
        body = await _reset(gql, users[8].email)
        assert error_codes(body) == ["RATE_LIMITED"]
        retry_after = body["errors"][0]["extensions"]["retryAfter"]
        assert 3000 < retry_after <= 3600  # the window is an hour
    assert _recipients(smtp) == [made.email for made in users[:8]]
    # Another client is not affected.
    async with other_app(database_url, db, client=("10.0.0.2", 5000), **settings) as gql:
        assert await _reset(gql, users[9].email) == {"data": {"requestPasswordReset": True}}
    assert len(smtp.inbox.messages) == 9


async def test_verification_mails_are_limited_and_say_so(
    mail_gql: GraphQLClient, smtp: SmtpServer, db: Database, user: MadeUser
) -> None:
    token = await session_token(db, make_settings(db.url), user)
    for _ in range(3):
        assert (await mail_gql(REQUEST_VERIFY, token=token))["data"] == {
            "requestEmailVerification": True
        }
    body = await mail_gql(REQUEST_VERIFY, token=token)
    assert error_codes(body) == ["RATE_LIMITED"]
    assert body["errors"][0]["extensions"]["retryAfter"] > 0
    assert _recipients(smtp) == [user.email] * 3


async def test_a_burst_of_requests_sends_at_most_the_limit(
    mail_gql: GraphQLClient, smtp: SmtpServer, user: MadeUser
) -> None:
    """30 requests for one address (the report: 30 mails in 0.4 s) send 3; the client's own
    limit (8) refuses the rest."""
    codes = [error_codes(await _reset(mail_gql, user.email)) for _ in range(30)]
    assert codes.count([]) == 8 and codes.count(["RATE_LIMITED"]) == 22
    assert _recipients(smtp) == [user.email] * 3


async def test_cleanup_keeps_the_mail_counts_for_their_whole_window(
    smtp: SmtpServer, database_url: str, db: Database, user: MadeUser
) -> None:
    await execute(
        db,
        "INSERT INTO login_attempts (kind, email, created_at) "
        "SELECT 'reset_mail', :email, now() - interval '30 minutes' FROM generate_series(1, 3)",
        email=user.email,
    )
    settings = make_settings(database_url, mail=smtp.mail_settings, auth=LIMITS)
    await cleanup_expired(db, settings)
    async with other_app(database_url, db, mail=smtp.mail_settings, auth=LIMITS) as gql:
        assert await _reset(gql, user.email) == {"data": {"requestPasswordReset": True}}
    assert smtp.inbox.messages == []
