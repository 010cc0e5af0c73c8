"""Access tokens: forged, mis-addressed, expired or of the wrong kind are refused; a revoked
session or a deactivated user is refused on the very next request."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import jwt

from gql_api.config import Settings
from gql_api.db import Database
from gql_api.models import UserStatus
from gql_api.repositories import users as user_repo
from tests.auth_support import ME, REFRESH, login, payload, scalar
from tests.conftest import TEST_JWT_SECRET, TEST_PASSWORD, GraphQLClient, MadeUser, error_codes


def _claims(settings: Settings, user: MadeUser, session_id: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(user.id),
        "sid": session_id,
        "role": user.role,
        "type": "access",
        "iat": now,
        "exp": now + 600,
        "iss": settings.auth.jwt_issuer,
        "aud": settings.auth.jwt_audience,
        "jti": uuid.uuid4().hex,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def _signed_in(gql: GraphQLClient, user: MadeUser) -> dict[str, Any]:
    return payload(await login(gql, user.email, TEST_PASSWORD), "login")


async def _me_code(gql: GraphQLClient, token: str) -> str | None:
    body = await gql(ME, token=token)
    codes = error_codes(body)
    return codes[0] if codes else None


async def test_access_token_claims(gql: GraphQLClient, settings: Settings, user: MadeUser) -> None:
    result = await _signed_in(gql, user)
    header = jwt.get_unverified_header(result["accessToken"])
    assert header["alg"] == "HS256"
    claims = jwt.decode(
        result["accessToken"], TEST_JWT_SECRET, algorithms=["HS256"], audience="gql_api"
    )
    assert set(claims) == {"sub", "sid", "role", "type", "iat", "exp", "iss", "aud", "jti"}
    assert claims["sid"] == result["session"]["id"] and claims["type"] == "access"
    assert claims["exp"] - claims["iat"] == 15 * 60
    assert await _me_code(gql, result["accessToken"]) is None


async def test_alg_none_is_refused(gql: GraphQLClient, settings: Settings, user: MadeUser) -> None:
    session_id = (await _signed_in(gql, user))["session"]["id"]
    unsigned = (
        _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(_claims(settings, user, session_id)) + "."
    )
    assert await _me_code(gql, unsigned) == "UNAUTHENTICATED"


async def test_other_key_audience_issuer_expiry_and_missing_claims_are_refused(
    gql: GraphQLClient, settings: Settings, user: MadeUser
) -> None:
    sid = (await _signed_in(gql, user))["session"]["id"]

    def sign(claims: dict[str, Any], key: str = TEST_JWT_SECRET, alg: str = "HS256") -> str:
        return jwt.encode(claims, key, algorithm=alg)

    good = sign(_claims(settings, user, sid))
    assert await _me_code(gql, good) is None
    refused = {
        "wrong audience": sign(_claims(settings, user, sid, aud="someone-else")),
        "wrong issuer": sign(_claims(settings, user, sid, iss="evil")),
        "expired": sign(
            _claims(settings, user, sid, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)
        ),
        "no jti": sign(_claims(settings, user, sid, jti=None)),
        "no sid": sign(_claims(settings, user, sid, sid=None)),
        "not access": sign(_claims(settings, user, sid, type="refresh")),
        "other key": sign(_claims(settings, user, sid), key="another-secret-" + "y" * 40),
        "other algorithm": sign(_claims(settings, user, sid), alg="HS384"),
        "other user": sign(_claims(settings, user, sid, sub=str(uuid.uuid4()))),
    }
    for what, token in refused.items():
        assert await _me_code(gql, token) == "UNAUTHENTICATED", what


async def test_refresh_token_is_not_an_access_token_and_vice_versa(
    gql: GraphQLClient, user: MadeUser
) -> None:
    result = await _signed_in(gql, user)
    assert await _me_code(gql, result["refreshToken"]) == "UNAUTHENTICATED"
    body = await gql(REFRESH, {"t": result["accessToken"]})
    assert error_codes(body) == ["UNAUTHENTICATED"]
    # Neither misuse harmed the session.
    assert await _me_code(gql, result["accessToken"]) is None
    payload(await gql(REFRESH, {"t": result["refreshToken"]}), "refreshToken")


async def test_logout_takes_effect_on_the_next_request(
    gql: GraphQLClient, db: Database, user: MadeUser
) -> None:
    result = await _signed_in(gql, user)
    body = await gql("mutation { logout }", token=result["accessToken"])
    assert body == {"data": {"logout": True}}
    assert await _me_code(gql, result["accessToken"]) == "UNAUTHENTICATED"
    assert error_codes(await gql(REFRESH, {"t": result["refreshToken"]})) == ["UNAUTHENTICATED"]
    assert await scalar(db, "SELECT revoked_reason FROM user_sessions") == "logout"
    assert error_codes(await gql("mutation { logout }")) == ["UNAUTHENTICATED"]


async def test_admin_revocation_takes_effect_on_the_next_request(
    gql: GraphQLClient, user: MadeUser, admin_token: str
) -> None:
    result = await _signed_in(gql, user)
    body = await gql(
        "mutation($id: ID!) { revokeSession(id: $id) }",
        {"id": result["session"]["id"]},
        token=admin_token,
    )
    assert body == {"data": {"revokeSession": True}}
    assert await _me_code(gql, result["accessToken"]) == "UNAUTHENTICATED"


async def test_deactivation_revokes_every_session(
    gql: GraphQLClient, db: Database, user: MadeUser
) -> None:
    first = await _signed_in(gql, user)
    second = await _signed_in(gql, user)
    async with db.transaction() as session:
        updated = await user_repo.set_status(session, user_id=user.id, status=UserStatus.INACTIVE)
        assert updated is not None and updated.status == "inactive"
    assert (
        await scalar(
            db, "SELECT count(*) FROM user_sessions WHERE revoked_reason = 'user_deactivated'"
        )
        == 2
    )
    for result in (first, second):
        assert await _me_code(gql, result["accessToken"]) == "UNAUTHENTICATED"
        assert error_codes(await gql(REFRESH, {"t": result["refreshToken"]})) == ["UNAUTHENTICATED"]
    # Reactivating does not bring the sessions back.
    async with db.transaction() as session:
        await user_repo.set_status(session, user_id=user.id, status=UserStatus.ACTIVE)
    assert await _me_code(gql, first["accessToken"]) == "UNAUTHENTICATED"


async def test_inactive_user_is_refused_even_with_a_live_session(
    gql: GraphQLClient, db: Database, user: MadeUser, user_token: str
) -> None:
    """The per-request check also looks at the user's status, not only at the session."""
    await _me_code(gql, user_token)
    async with db.engine.begin() as conn:
        from sqlalchemy import text

        await conn.execute(text("UPDATE users SET status = 'inactive'"))
    assert await _me_code(gql, user_token) == "UNAUTHENTICATED"


async def test_malformed_authorization_header(gql: GraphQLClient) -> None:
    body = await gql(ME, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert error_codes(body) == ["UNAUTHENTICATED"]
