"""register: validation, normalisation, conflicts, long and odd inputs, per-address limit."""

from __future__ import annotations

import asyncio

from gql_api.db import Database
from tests.auth_support import (
    ME,
    STRONG_PASSWORD,
    audit_actions,
    login,
    other_app,
    payload,
    register,
    scalar,
)
from tests.conftest import GraphQLClient, error_codes


async def test_register_signs_in_and_is_audited(gql: GraphQLClient, db: Database) -> None:
    result = payload(await register(gql, "  New.Person@Example.COM "), "register")
    assert result["tokenType"] == "Bearer"
    assert result["expiresIn"] == 15 * 60
    assert result["user"]["email"] == "new.person@example.com"
    assert result["user"]["emailVerified"] is False
    assert result["session"]["current"] is True
    assert len(result["refreshToken"]) >= 43  # 256 bits, base64url

    me = await gql(ME, token=result["accessToken"])
    assert me["data"]["me"]["email"] == "new.person@example.com"
    # The user and its profile, in one transaction.
    assert await scalar(db, "SELECT count(*) FROM user_profiles") == 1
    assert await audit_actions(db) == ["auth.register"]
    stored = await scalar(db, "SELECT token_hash FROM user_sessions")
    assert stored != result["refreshToken"] and len(stored) == 64  # only the SHA-256


async def test_duplicate_email_is_conflict_case_insensitively(gql: GraphQLClient) -> None:
    payload(await register(gql, "taken@example.com"), "register")
    body = await register(gql, "TAKEN@example.com ")
    assert error_codes(body) == ["CONFLICT"]
    assert body["data"] is None


async def test_concurrent_registrations_of_one_email(gql: GraphQLClient, db: Database) -> None:
    bodies = await asyncio.gather(*(register(gql, "race@example.com") for _ in range(4)))
    codes = sorted(error_codes(b)[0] if "errors" in b else "OK" for b in bodies)
    assert codes == ["CONFLICT", "CONFLICT", "CONFLICT", "OK"]
    assert await scalar(db, "SELECT count(*) FROM users") == 1


async def test_field_rules_are_reported_per_field(gql: GraphQLClient) -> None:
    body = await register(gql, "not-an-email", "short", firstName="  ", lastName="x" * 101)
    assert error_codes(body) == ["BAD_USER_INPUT"]
    fields = body["errors"][0]["extensions"]["fields"]
    assert set(fields) == {"email", "password", "firstName", "lastName"}


async def test_password_length_bounds(gql: GraphQLClient) -> None:
    assert (
        "password"
        in (await register(gql, "a@example.com", "Ab1!xyz"))["errors"][0]["extensions"]["fields"]
    )
    assert "errors" not in await register(gql, "b@example.com", "Ab1!xyzw")  # 8 is enough
    too_long = await register(gql, "c@example.com", "k" * 129)
    assert too_long["errors"][0]["extensions"]["fields"] == {
        "password": "must be at most 128 characters"
    }


async def test_common_passwords_are_refused_case_insensitively(gql: GraphQLClient) -> None:
    for common in ("password1", "PassWord1", "qwertyuiop", "iloveyou"):
        body = await register(gql, "common@example.com", common)
        assert error_codes(body) == ["BAD_USER_INPUT"], common
        assert "too common" in body["errors"][0]["extensions"]["fields"]["password"]


async def test_names_are_trimmed(gql: GraphQLClient) -> None:
    result = payload(
        await register(
            gql, "names@example.com", firstName="  Ana ", lastName=" " + "z" * 100 + " "
        ),
        "register",
    )
    assert result["user"]["firstName"] == "Ana"
    assert result["user"]["lastName"] == "z" * 100


async def test_password_beyond_bcrypt_72_bytes_counts_in_full(gql: GraphQLClient) -> None:
    """bcrypt reads 72 bytes at most: without the pre-hash these two would be one password."""
    base = "p" * 100  # a 100-byte password
    payload(await register(gql, "long@example.com", base), "register")
    payload(await login(gql, "long@example.com", base), "login")
    assert error_codes(await login(gql, "long@example.com", "p" * 99 + "q")) == ["UNAUTHENTICATED"]


async def test_128_characters_of_any_script(gql: GraphQLClient) -> None:
    password = ("пароль密码🔑ß" * 20)[:128]  # 128 characters, about 330 UTF-8 bytes
    assert len(password) == 128 and len(password.encode()) > 300
    payload(await register(gql, "script@example.com", password), "register")
    payload(await login(gql, "script@example.com", password), "login")


async def test_nul_bytes_are_bad_user_input(gql: GraphQLClient, db: Database) -> None:
    body = await register(gql, "nul@example.com", "abc\x00defghij", firstName="A\x00")
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert set(body["errors"][0]["extensions"]["fields"]) == {"password", "firstName"}
    body = await login(gql, "nul\x00@example.com", STRONG_PASSWORD)
    assert error_codes(body) == ["BAD_USER_INPUT"]
    body = await login(gql, "n@example.com", STRONG_PASSWORD, device_info={"name": "x\x00"})
    assert body["errors"][0]["extensions"]["fields"] == {
        "deviceInfo": "must not contain NUL characters"
    }
    assert await scalar(db, "SELECT count(*) FROM users") == 0


async def test_ten_megabyte_strings_are_bad_user_input(database_url: str, db: Database) -> None:
    """The resolvers bound every string before hashing or storing it. The default 1 MB body
    limit (server.max_body_bytes) answers 413 before GraphQL runs, so raise it here to reach
    the resolvers with 10 MB."""
    huge = "x" * (10 * 1024 * 1024)
    async with other_app(database_url, db, server={"max_body_bytes": 64 * 1024 * 1024}) as gql:
        body = await register(gql, "huge@example.com", huge)
        assert error_codes(body) == ["BAD_USER_INPUT"]
        assert "password" in body["errors"][0]["extensions"]["fields"]
        body = await login(gql, huge, huge)
        assert error_codes(body) == ["BAD_USER_INPUT"]
        assert set(body["errors"][0]["extensions"]["fields"]) == {"email", "password"}
        body = await register(gql, "huge2@example.com", STRONG_PASSWORD, firstName=huge)
        assert body["errors"][0]["extensions"]["fields"] == {
            "firstName": "must be at most 100 characters"
        }


async def test_strings_under_the_body_limit_are_bad_user_input(gql: GraphQLClient) -> None:
    big = "y" * (900 * 1024)
    body = await login(gql, "big@example.com", big)
    assert error_codes(body) == ["BAD_USER_INPUT"]


async def test_registration_is_limited_per_address(database_url: str, db: Database) -> None:
    async with other_app(database_url, db, auth={"register_max_per_address": 3}) as gql:
        for n in range(3):
            payload(await register(gql, f"r{n}@example.com"), "register")
        body = await register(gql, "r4@example.com")
        assert error_codes(body) == ["RATE_LIMITED"]
        assert 890 <= body["errors"][0]["extensions"]["retryAfter"] <= 900
    # Another address is not affected.
    async with other_app(
        database_url, db, client=("10.0.0.9", 1234), auth={"register_max_per_address": 3}
    ) as gql:
        payload(await register(gql, "r5@example.com"), "register")


async def test_default_registration_limit_is_30_per_15_minutes(gql: GraphQLClient) -> None:
    from gql_api.config import AuthSettings

    defaults = AuthSettings()
    assert defaults.register_max_per_address == 30
    assert defaults.register_window.total_seconds() == 15 * 60
