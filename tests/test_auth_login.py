"""login: bookkeeping, the session row, client address, one error for every failure and the
same timing, hash upgrades, concurrency."""

from __future__ import annotations

import asyncio
import statistics
import time

from gql_api.auth.passwords import hash_cost
from gql_api.db import Database
from tests.auth_support import audit_actions, login, other_app, payload, scalar
from tests.conftest import TEST_PASSWORD, GraphQLClient, MadeUser, error_codes, insert_user


async def test_login_starts_a_session_and_counts(
    gql: GraphQLClient, db: Database, user: MadeUser
) -> None:
    device = {"name": "Pixel 9", "os": {"name": "Android", "version": 15}}
    first = payload(
        await login(gql, " USER@example.com", TEST_PASSWORD, device, {"User-Agent": "app/1.0"}),
        "login",
    )
    assert first["user"]["loginCount"] == 1 and first["user"]["lastLoginAt"] is not None
    assert first["session"]["deviceInfo"] == device
    assert first["session"]["ipAddress"] == "127.0.0.1"
    assert first["session"]["userAgent"] == "app/1.0"
    assert first["session"]["current"] is True
    second = payload(await login(gql, "user@example.com", TEST_PASSWORD), "login")
    assert second["user"]["loginCount"] == 2
    assert second["session"]["id"] != first["session"]["id"]
    lifetime = await scalar(
        db,
        "SELECT extract(epoch FROM expires_at - created_at) FROM user_sessions WHERE id = :id",
        id=first["session"]["id"],
    )
    assert abs(float(lifetime) - 30 * 86400) < 60  # 30 days by default
    assert await audit_actions(db) == ["auth.login", "auth.login"]

    me = await gql(
        "{ me { sessions { id deviceInfo ipAddress userAgent createdAt expiresAt current } } }",
        token=second["accessToken"],
    )
    sessions = me["data"]["me"]["sessions"]
    assert len(sessions) == 2
    assert [s["current"] for s in sessions if s["id"] == second["session"]["id"]] == [True]
    assert [s["deviceInfo"] for s in sessions if s["id"] == first["session"]["id"]] == [device]


async def test_concurrent_logins_count_exactly(
    database_url: str, db: Database, user: MadeUser
) -> None:
    # Attempts in flight count against the limit until they succeed (see auth.rate_limits), so 12
    # simultaneous sign-ins of one account need a limit above 12.
    async with other_app(database_url, db, auth={"login_max_failures_per_account": 20}) as gql:
        bodies = await asyncio.gather(*(login(gql, user.email, TEST_PASSWORD) for _ in range(12)))
    assert all("errors" not in body for body in bodies), bodies
    assert await scalar(db, "SELECT login_count FROM users WHERE id = :id", id=user.id) == 12
    assert await scalar(db, "SELECT count(*) FROM user_sessions") == 12


async def test_failures_are_one_error(gql: GraphQLClient, db: Database, user: MadeUser) -> None:
    await insert_user(db, email="gone@example.com", status="inactive")
    bodies = [
        await login(gql, "nobody@example.com", TEST_PASSWORD),
        await login(gql, user.email, "wrong password!"),
        await login(gql, "gone@example.com", TEST_PASSWORD),  # right password, inactive
        await login(gql, "not an email", TEST_PASSWORD),
    ]
    errors = [body["errors"][0] for body in bodies]
    assert {e["extensions"]["code"] for e in errors} == {"UNAUTHENTICATED"}
    assert {e["message"] for e in errors} == {"Invalid email or password"}
    assert all(body["data"] is None for body in bodies)
    assert await scalar(db, "SELECT count(*) FROM user_sessions") == 0
    assert await scalar(db, "SELECT login_count FROM users WHERE id = :id", id=user.id) == 0
    assert await audit_actions(db) == ["auth.login_failed"] * 4
    # An unknown e-mail names no target; a known one does.
    assert (
        await scalar(db, "SELECT count(*) FROM audit_logs WHERE target_id IS NULL") == 2
    )  # nobody@ and "not an email"


async def test_unknown_email_and_wrong_password_take_the_same_time(
    database_url: str, db: Database, user: MadeUser
) -> None:
    """Medians of several samples at bcrypt cost 4; a ratio, not absolute times."""
    limits = {"login_max_failures_per_account": 1000, "login_max_failures_per_address": 1000}
    async with other_app(database_url, db, auth=limits) as gql:
        await login(gql, "warm-up@example.com", "whatever-password")  # dummy hash cached

        async def timed(email: str) -> float:
            started = time.perf_counter()
            body = await login(gql, email, "wrong-password-1")
            assert error_codes(body) == ["UNAUTHENTICATED"]
            return time.perf_counter() - started

        unknown: list[float] = []
        wrong: list[float] = []
        for n in range(15):
            unknown.append(await timed(f"nobody{n}@example.com"))
            wrong.append(await timed(user.email))
    ratio = statistics.median(unknown) / statistics.median(wrong)
    assert 1 / 3 < ratio < 3, (unknown, wrong)


async def test_unknown_email_still_spends_a_bcrypt_check(database_url: str, db: Database) -> None:
    """At cost 12 a bcrypt check is far above everything else a failed login does."""
    async with other_app(database_url, db, auth={"bcrypt_rounds": 12}) as gql:
        await login(gql, "warm@example.com", "some-password")  # builds the cost-12 dummy once
        started = time.perf_counter()
        body = await login(gql, "nobody@example.com", "some-password")
        elapsed = time.perf_counter() - started
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert elapsed > 0.08, elapsed


async def test_old_cost_is_upgraded_at_next_login(
    database_url: str, db: Database, user: MadeUser
) -> None:
    before = await scalar(db, "SELECT password_hash FROM users WHERE id = :id", id=user.id)
    assert hash_cost(before) == 4
    async with other_app(database_url, db, auth={"bcrypt_rounds": 5}) as gql:
        payload(await login(gql, user.email, TEST_PASSWORD), "login")
        after = await scalar(db, "SELECT password_hash FROM users WHERE id = :id", id=user.id)
        assert hash_cost(after) == 5
        payload(await login(gql, user.email, TEST_PASSWORD), "login")  # still the same password
    # A failed login does not touch it.
    async with other_app(database_url, db, auth={"bcrypt_rounds": 6}) as gql:
        assert error_codes(await login(gql, user.email, "nope-nope-nope")) == ["UNAUTHENTICATED"]
    assert await scalar(db, "SELECT password_hash FROM users WHERE id = :id", id=user.id) == after


async def test_forwarded_for_counts_only_from_trusted_proxies(
    database_url: str, db: Database, user: MadeUser
) -> None:
    headers = {"X-Forwarded-For": "203.0.113.7, 10.1.2.3"}
    # Not trusted: the peer address is the client, the header is ignored.
    async with other_app(database_url, db) as gql:
        result = payload(await login(gql, user.email, TEST_PASSWORD, headers=headers), "login")
        assert result["session"]["ipAddress"] == "127.0.0.1"
    # Behind our proxies (127.0.0.1 and 10.0.0.0/8): the first untrusted hop is the client.
    async with other_app(
        database_url, db, server={"trusted_proxies": ["127.0.0.1/32", "10.0.0.0/8"]}
    ) as gql:
        result = payload(await login(gql, user.email, TEST_PASSWORD, headers=headers), "login")
        assert result["session"]["ipAddress"] == "203.0.113.7"
    assert await scalar(db, "SELECT count(*) FROM audit_logs WHERE ip_address = '203.0.113.7'") == 1


async def test_forwarded_for_from_an_untrusted_peer_is_ignored_when_proxies_are_set(
    database_url: str, db: Database, user: MadeUser
) -> None:
    """With trusted proxies configured, a peer that is not one of them cannot choose its
    address: the header would let it dodge the per-address login limit."""
    async with other_app(
        database_url,
        db,
        client=("192.0.2.50", 40000),
        server={"trusted_proxies": ["10.0.0.0/8"]},
        auth={"login_max_failures_per_address": 3},
    ) as gql:
        spoofed = {"X-Forwarded-For": "203.0.113.7"}
        result = payload(await login(gql, user.email, TEST_PASSWORD, headers=spoofed), "login")
        assert result["session"]["ipAddress"] == "192.0.2.50"
        # Three failures, each claiming another address, still count against the peer's.
        for n in range(3):
            headers = {"X-Forwarded-For": f"198.51.100.{n + 1}"}
            body = await login(gql, f"nobody-{n}@example.com", "wrong-password", headers=headers)
            assert error_codes(body) == ["UNAUTHENTICATED"], body
        body = await login(gql, user.email, TEST_PASSWORD, headers={"X-Forwarded-For": "1.2.3.4"})
        assert error_codes(body) == ["RATE_LIMITED"], body
    assert await scalar(db, "SELECT count(*) FROM audit_logs WHERE ip_address = '203.0.113.7'") == 0
