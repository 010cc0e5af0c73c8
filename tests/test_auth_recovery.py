"""changePassword, e-mail verification and password reset, with mail received by a real SMTP
server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from gql_api.config import AuthSettings
from gql_api.db import Database
from tests.auth_support import (
    ME,
    PAYLOAD,
    REFRESH,
    STRONG_PASSWORD,
    SmtpServer,
    audit_actions,
    execute,
    login,
    other_app,
    payload,
    scalar,
)
from tests.conftest import TEST_PASSWORD, GraphQLClient, MadeUser, error_codes

CHANGE = f"""
mutation($c: String!, $n: String!) {{
  changePassword(currentPassword: $c, newPassword: $n) {{ {PAYLOAD} }}
}}
"""
REQUEST_VERIFY = "mutation { requestEmailVerification }"
VERIFY = "mutation($t: String!) { verifyEmail(token: $t) { email emailVerified emailVerifiedAt } }"
REQUEST_RESET = "mutation($e: String!) { requestPasswordReset(email: $e) }"
RESET = "mutation($t: String!, $p: String!) { resetPassword(token: $t, newPassword: $p) }"
NEW_PASSWORD = "lantern-Quiet-17-harbour"


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
    async with other_app(database_url, db, mail=smtp.mail_settings) as gql:
        yield gql


async def _sign_in(gql: GraphQLClient, email: str, password: str = TEST_PASSWORD) -> dict[str, Any]:
    return payload(await login(gql, email, password), "login")


# --- changePassword ---


async def test_change_password(gql: GraphQLClient, db: Database, user: MadeUser) -> None:
    current = await _sign_in(gql, user.email)
    other = await _sign_in(gql, user.email)
    body = await gql(CHANGE, {"c": TEST_PASSWORD, "n": NEW_PASSWORD}, token=current["accessToken"])
    result = payload(body, "changePassword")
    assert result["user"]["passwordChangedAt"] is not None
    # This device continues on a new session with the new tokens; the old tokens are dead.
    assert result["session"]["id"] != current["session"]["id"]
    assert (await gql(ME, token=result["accessToken"]))["data"]["me"] is not None
    assert error_codes(await gql(ME, token=current["accessToken"])) == ["UNAUTHENTICATED"]
    assert error_codes(await gql(REFRESH, {"t": current["refreshToken"]})) == ["UNAUTHENTICATED"]
    payload(await gql(REFRESH, {"t": result["refreshToken"]}), "refreshToken")
    # Every other session is revoked on its next request.
    assert error_codes(await gql(ME, token=other["accessToken"])) == ["UNAUTHENTICATED"]
    assert error_codes(await login(gql, user.email, TEST_PASSWORD)) == ["UNAUTHENTICATED"]
    await _sign_in(gql, user.email, NEW_PASSWORD)
    assert "auth.password_changed" in await audit_actions(db)
    assert (
        await scalar(
            db, "SELECT count(*) FROM user_sessions WHERE revoked_reason = 'password_changed'"
        )
        == 2  # the other session and the one the change was made from
    )


async def test_change_password_needs_the_current_one(
    gql: GraphQLClient, user: MadeUser, user_token: str
) -> None:
    body = await gql(CHANGE, {"c": "not-my-password", "n": NEW_PASSWORD}, token=user_token)
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["fields"] == {"currentPassword": "is incorrect"}
    body = await gql(CHANGE, {"c": TEST_PASSWORD, "n": "password123"}, token=user_token)
    assert set(body["errors"][0]["extensions"]["fields"]) == {"newPassword"}
    assert error_codes(await gql(CHANGE, {"c": TEST_PASSWORD, "n": NEW_PASSWORD})) == [
        "UNAUTHENTICATED"
    ]
    await _sign_in(gql, user.email)  # unchanged


# --- e-mail verification ---


async def test_email_verification_by_mail(
    mail_gql: GraphQLClient, smtp: SmtpServer, db: Database, user: MadeUser, user_token: str
) -> None:
    assert (await mail_gql(REQUEST_VERIFY, token=user_token))["data"] == {
        "requestEmailVerification": True
    }
    assert len(smtp.inbox.messages) == 1
    message = smtp.inbox.messages[0]
    assert message["To"] == user.email and message["From"] == "no-reply@api-server.com"
    assert "https://app.test/verify-email?token=" in message.get_content()
    token = smtp.inbox.token()
    assert await scalar(db, "SELECT token_hash FROM one_time_tokens") != token  # hashed
    ttl = await scalar(
        db, "SELECT extract(epoch FROM expires_at - created_at) FROM one_time_tokens"
    )
    assert abs(float(ttl) - 24 * 3600) < 60

    body = await mail_gql(VERIFY, {"t": token})
    assert body["data"]["verifyEmail"]["emailVerified"] is True
    assert body["data"]["verifyEmail"]["emailVerifiedAt"] is not None
    # Single use.
    assert error_codes(await mail_gql(VERIFY, {"t": token})) == ["BAD_USER_INPUT"]
    # Already verified: nothing more is sent.
    await mail_gql(REQUEST_VERIFY, token=user_token)
    assert len(smtp.inbox.messages) == 1
    actions = await audit_actions(db)
    assert "auth.email_verification_requested" in actions and "auth.email_verified" in actions


async def test_verification_token_expires_and_newer_replaces_older(
    mail_gql: GraphQLClient, smtp: SmtpServer, db: Database, user: MadeUser, user_token: str
) -> None:
    await mail_gql(REQUEST_VERIFY, token=user_token)
    await mail_gql(REQUEST_VERIFY, token=user_token)
    older, newer = smtp.inbox.token(0), smtp.inbox.token(1)
    assert error_codes(await mail_gql(VERIFY, {"t": older})) == ["BAD_USER_INPUT"]
    await execute(db, "UPDATE one_time_tokens SET expires_at = now() - interval '1 second'")
    assert error_codes(await mail_gql(VERIFY, {"t": newer})) == ["BAD_USER_INPUT"]
    assert error_codes(await mail_gql(VERIFY, {"t": "made-up"})) == ["BAD_USER_INPUT"]
    assert error_codes(await mail_gql(REQUEST_VERIFY)) == ["UNAUTHENTICATED"]


# --- password reset ---


async def test_password_reset_by_mail(
    mail_gql: GraphQLClient, smtp: SmtpServer, db: Database, user: MadeUser
) -> None:
    sessions = [await _sign_in(mail_gql, user.email) for _ in range(2)]
    body = await mail_gql(REQUEST_RESET, {"e": " User@Example.com"})
    assert body == {"data": {"requestPasswordReset": True}}
    assert len(smtp.inbox.messages) == 1
    assert "https://app.test/reset-password?token=" in smtp.inbox.messages[0].get_content()
    token = smtp.inbox.token()
    ttl = await scalar(
        db, "SELECT extract(epoch FROM expires_at - created_at) FROM one_time_tokens"
    )
    assert abs(float(ttl) - 3600) < 60

    weak = await mail_gql(RESET, {"t": token, "p": "12345678"})
    assert set(weak["errors"][0]["extensions"]["fields"]) == {"newPassword"}
    assert (await mail_gql(RESET, {"t": token, "p": NEW_PASSWORD}))["data"] == {
        "resetPassword": True
    }
    # Every session is revoked; the new password works, the old does not; single use.
    for result in sessions:
        assert error_codes(await mail_gql(ME, token=result["accessToken"])) == ["UNAUTHENTICATED"]
    assert error_codes(await login(mail_gql, user.email, TEST_PASSWORD)) == ["UNAUTHENTICATED"]
    await _sign_in(mail_gql, user.email, NEW_PASSWORD)
    assert error_codes(await mail_gql(RESET, {"t": token, "p": STRONG_PASSWORD})) == [
        "BAD_USER_INPUT"
    ]
    actions = await audit_actions(db)
    assert "auth.password_reset_requested" in actions and "auth.password_reset" in actions
    assert await scalar(db, "SELECT password_changed_at IS NOT NULL FROM users") is True


async def test_reset_request_does_not_reveal_accounts(
    mail_gql: GraphQLClient, smtp: SmtpServer, db: Database
) -> None:
    for email in ("nobody@example.com", "not an address"):
        assert await mail_gql(REQUEST_RESET, {"e": email}) == {
            "data": {"requestPasswordReset": True}
        }
    assert smtp.inbox.messages == []
    assert await scalar(db, "SELECT count(*) FROM one_time_tokens") == 0
    # Audited without a target.
    assert (
        await scalar(
            db,
            "SELECT count(*) FROM audit_logs WHERE action = 'auth.password_reset_requested' "
            "AND target_id IS NULL",
        )
        == 2
    )


async def test_reset_token_expires(
    mail_gql: GraphQLClient, smtp: SmtpServer, db: Database, user: MadeUser
) -> None:
    await mail_gql(REQUEST_RESET, {"e": user.email})
    await execute(db, "UPDATE one_time_tokens SET expires_at = now() - interval '1 second'")
    body = await mail_gql(RESET, {"t": smtp.inbox.token(), "p": NEW_PASSWORD})
    assert body["errors"][0]["extensions"] == {
        "code": "BAD_USER_INPUT",
        "fields": {"token": "is invalid or expired"},
    }


async def test_reset_lifts_the_accounts_login_limit(
    mail_gql: GraphQLClient, smtp: SmtpServer, user: MadeUser
) -> None:
    for _ in range(5):
        await login(mail_gql, user.email, "wrong-password")
    assert error_codes(await login(mail_gql, user.email, TEST_PASSWORD)) == ["RATE_LIMITED"]
    await mail_gql(REQUEST_RESET, {"e": user.email})
    await mail_gql(RESET, {"t": smtp.inbox.token(), "p": NEW_PASSWORD})
    await _sign_in(mail_gql, user.email, NEW_PASSWORD)


async def test_without_smtp_the_mail_goes_to_the_log(
    gql: GraphQLClient, user: MadeUser, user_token: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="gql_api.mailer"):
        assert (await gql(REQUEST_VERIFY, token=user_token))["data"] == {
            "requestEmailVerification": True
        }
    assert "verify-email?token=" in caplog.text


def test_token_lifetimes() -> None:
    defaults = AuthSettings()
    assert defaults.verification_token_ttl.total_seconds() == 24 * 3600
    assert defaults.reset_token_ttl.total_seconds() == 3600


async def test_wrong_current_passwords_count_against_the_login_limit(
    gql: GraphQLClient, user: MadeUser, user_token: str
) -> None:
    """A stolen access token cannot be used to guess the password at leisure."""
    for _ in range(5):
        body = await gql(CHANGE, {"c": "guess-guess-1", "n": NEW_PASSWORD}, token=user_token)
        assert error_codes(body) == ["BAD_USER_INPUT"]
    body = await gql(CHANGE, {"c": TEST_PASSWORD, "n": NEW_PASSWORD}, token=user_token)
    assert error_codes(body) == ["RATE_LIMITED"]


async def test_mail_server_down_is_service_unavailable(
    database_url: str, db: Database, user: MadeUser, user_token: str
) -> None:
    from tests.server_support import free_port

    mail = {"smtp_host": "127.0.0.1", "smtp_port": free_port()}  # nothing listens there
    async with other_app(database_url, db, mail=mail) as gql:
        body = await gql(REQUEST_VERIFY, token=user_token)
        assert error_codes(body) == ["SERVICE_UNAVAILABLE"]
        # The reset request still answers true: its mail is sent after the response.
        assert (await gql(REQUEST_RESET, {"e": user.email}))["data"] == {
            "requestPasswordReset": True
        }
