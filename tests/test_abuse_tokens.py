"""Access tokens issued before a password change, a password reset or a deactivation are
refused on the next request, although they are still within their lifetime and their
signature was verified (and remembered) before."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text

from gql_api.auth.accounts import change_password
from gql_api.auth.current import authenticate
from gql_api.auth.events import RequestMeta
from gql_api.config import Settings
from gql_api.db import Database
from gql_api.errors import Unauthenticated
from tests.auth_support import ME, PAYLOAD, REFRESH, SmtpServer, login, other_app, payload
from tests.conftest import TEST_PASSWORD, GraphQLClient, MadeUser, error_codes

CHANGE = f"""
mutation($c: String!, $n: String!) {{
  changePassword(currentPassword: $c, newPassword: $n) {{ {PAYLOAD} }}
}}
"""
REQUEST_RESET = "mutation($e: String!) { requestPasswordReset(email: $e) }"
RESET = "mutation($t: String!, $p: String!) { resetPassword(token: $t, newPassword: $p) }"
DEACTIVATE = "mutation($id: ID!) { updateUser(id: $id, input: {status: INACTIVE}) { status } }"
NEW_PASSWORD = "lantern-Quiet-17-harbour"
DEVICE = {"name": "laptop", "os": "linux"}


async def _sign_in(gql: GraphQLClient, email: str, password: str = TEST_PASSWORD) -> dict[str, Any]:
    return payload(await login(gql, email, password, device_info=DEVICE), "login")


async def _me(gql: GraphQLClient, token: str) -> list[str]:
    """Error codes of a `me` query (the planned executor's document) and of the same query
    written with a fragment (the full app's): both lanes must agree."""
    planned = error_codes(await gql(ME, token=token))
    full = error_codes(await gql("{ me { ...F } } fragment F on User { id }", token=token))
    assert planned == full, (planned, full)
    return planned


async def test_the_access_token_used_to_change_the_password_stops_working(
    gql: GraphQLClient, user: MadeUser
) -> None:
    signed_in = await _sign_in(gql, user.email)
    old_access = signed_in["accessToken"]
    assert await _me(gql, old_access) == []  # verified, and remembered as verified
    body = await gql(CHANGE, {"c": TEST_PASSWORD, "n": NEW_PASSWORD}, token=old_access)
    changed = payload(body, "changePassword")

    assert await _me(gql, old_access) == ["UNAUTHENTICATED"]
    assert error_codes(await gql(REFRESH, {"t": signed_in["refreshToken"]})) == ["UNAUTHENTICATED"]
    # The new pair works, and so does its refresh token; the device is remembered.
    assert await _me(gql, changed["accessToken"]) == []
    assert changed["session"]["current"] is True
    assert changed["session"]["deviceInfo"] == DEVICE
    refreshed = payload(await gql(REFRESH, {"t": changed["refreshToken"]}), "refreshToken")
    assert await _me(gql, refreshed["accessToken"]) == []
    assert await _me(gql, old_access) == ["UNAUTHENTICATED"]


async def test_a_second_change_with_the_old_token_is_refused(
    gql: GraphQLClient, user: MadeUser
) -> None:
    old_access = (await _sign_in(gql, user.email))["accessToken"]
    payload(
        await gql(CHANGE, {"c": TEST_PASSWORD, "n": NEW_PASSWORD}, token=old_access),
        "changePassword",
    )
    body = await gql(CHANGE, {"c": NEW_PASSWORD, "n": "another-Fresh-93-meadow"}, token=old_access)
    assert error_codes(body) == ["UNAUTHENTICATED"]
    await _sign_in(gql, user.email, NEW_PASSWORD)  # the password is the first change's


async def test_of_two_concurrent_changes_from_one_session_one_wins(
    gql: GraphQLClient, user: MadeUser
) -> None:
    old_access = (await _sign_in(gql, user.email))["accessToken"]
    passwords = ["first-Winner-31-pebble", "second-Winner-57-marble"]
    bodies = await asyncio.gather(
        *(gql(CHANGE, {"c": TEST_PASSWORD, "n": p}, token=old_access) for p in passwords)
    )
    codes = sorted(tuple(error_codes(body)) for body in bodies)
    assert codes == [(), ("UNAUTHENTICATED",)], bodies
    winner = next(p for p, body in zip(passwords, bodies, strict=True) if "errors" not in body)
    changed = next(body["data"]["changePassword"] for body in bodies if "errors" not in body)
    assert await _me(gql, changed["accessToken"]) == []  # the winner's session stays live
    await _sign_in(gql, user.email, winner)


async def test_a_change_whose_session_ended_meanwhile_is_unauthenticated(
    gql: GraphQLClient, db: Database, settings: Settings, user: MadeUser
) -> None:
    """The loser of two concurrent changes from one session may have passed its bearer check
    before the winner committed, and read the password after: it is told its session ended,
    not that its (old, right) password is incorrect, and no failed attempt is counted."""
    access = (await _sign_in(gql, user.email))["accessToken"]
    viewer = await authenticate(db, settings.auth, access)  # both requests got this far
    first = await change_password(
        db, settings.auth, viewer=viewer, current_password=TEST_PASSWORD,
        new_password="first-Winner-31-pebble", meta=RequestMeta(),
    )  # fmt: skip
    assert await _me(gql, first.access_token) == []
    with pytest.raises(Unauthenticated):
        await change_password(
            db, settings.auth, viewer=viewer, current_password=TEST_PASSWORD,
            new_password="second-Winner-57-marble", meta=RequestMeta(),
        )  # fmt: skip
    async with db.session() as session:
        failed = await session.scalar(
            text("SELECT count(*) FROM login_attempts WHERE settled AND NOT succeeded")
        )
    assert failed == 0
    await _sign_in(gql, user.email, "first-Winner-31-pebble")


@pytest.fixture
async def smtp_server() -> Any:
    server = SmtpServer()
    server.controller.start()
    try:
        yield server
    finally:
        server.controller.stop()


async def test_a_password_reset_refuses_every_earlier_access_token(
    smtp_server: SmtpServer, database_url: str, db: Database, user: MadeUser
) -> None:
    async with other_app(database_url, db, mail=smtp_server.mail_settings) as gql:
        tokens = [(await _sign_in(gql, user.email))["accessToken"] for _ in range(2)]
        for token in tokens:
            assert await _me(gql, token) == []
        assert (await gql(REQUEST_RESET, {"e": user.email}))["data"] == {
            "requestPasswordReset": True
        }
        reset = await gql(RESET, {"t": smtp_server.inbox.token(), "p": NEW_PASSWORD})
        assert reset["data"] == {"resetPassword": True}
        for token in tokens:
            assert await _me(gql, token) == ["UNAUTHENTICATED"]


async def test_deactivation_refuses_the_users_access_tokens(
    gql: GraphQLClient, user: MadeUser, admin_token: str
) -> None:
    token = (await _sign_in(gql, user.email))["accessToken"]
    assert await _me(gql, token) == []
    body = await gql(DEACTIVATE, {"id": str(user.id)}, token=admin_token)
    assert "errors" not in body, body
    assert await _me(gql, token) == ["UNAUTHENTICATED"]
