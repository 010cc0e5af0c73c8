"""Second factor (TOTP + recovery codes) over real HTTP on a real PostgreSQL, with the clock
injected (``Settings.clock``), never slept: enrolment, login with a code or a recovery code,
replay, clock skew at the window's edges, expiry, lock-outs, re-authentication, management,
encryption at rest and the audit trail."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import timedelta

from gql_api.config import Settings
from gql_api.db import Database
from tests.auth_support import audit_actions, scalar
from tests.conftest import TEST_PASSWORD, MadeUser, session_token
from tests.mfa_support import (
    CONFIRM,
    MY_MFA,
    START,
    STEP,
    Clock,
    challenge,
    code_at,
    data_of,
    enrol,
    error_of,
    login,
    mfa_app,
    verify,
)


async def _sessions(db: Database, user: MadeUser) -> int:
    return int(await scalar(db, "SELECT count(*) FROM user_sessions WHERE user_id = :u", u=user.id))


async def test_enrol_then_sign_in_with_a_code_in_two_steps(
    db: Database, user: MadeUser, user_token: str
) -> None:
    clock = Clock()
    start = clock.freeze_at_step_start()
    async with mfa_app(db, clock) as gql:
        started = data_of(await gql(START, token=user_token))["startTotpEnrollment"]
        secret = started["secret"]
        assert started["otpauthUri"].startswith("otpauth://totp/")
        assert f"secret={secret}" in started["otpauthUri"]
        assert "issuer=gql_api" in started["otpauthUri"]
        assert started["qrCodeSvg"].startswith("<svg") and "</svg>" in started["qrCodeSvg"]
        # Pending until confirmed: no factor yet, and login still answers tokens.
        assert data_of(await gql(MY_MFA, token=user_token))["me"]["mfa"] == {
            "enabled": False,
            "recoveryCodesLeft": 0,
            "factors": [],
        }

        codes = data_of(await gql(CONFIRM, {"c": code_at(secret, start)}, token=user_token))[
            "confirmTotpEnrollment"
        ]
        assert len(codes) == 10 and len(set(codes)) == 10
        mine = data_of(await gql(MY_MFA, token=user_token))["me"]["mfa"]
        assert mine["enabled"] is True and mine["recoveryCodesLeft"] == 10
        assert [f["kind"] for f in mine["factors"]] == ["TOTP"]
        assert mine["factors"][0]["id"] == started["factorId"]

        before = await _sessions(db, user)
        first = await login(gql, user.email, TEST_PASSWORD, **{"User-Agent": "phone-app/1"})
        result = data_of(first)["login"]
        assert result["accessToken"] is None and result["refreshToken"] is None
        assert result["session"] is None
        assert result["mfaRequired"]["methods"] == ["TOTP", "RECOVERY_CODE"]
        assert await _sessions(db, user) == before  # no session before the second step

        clock.frozen = start + STEP  # the enrolment's step was used; the next one is new
        body = await verify(
            gql,
            result["mfaRequired"]["challengeToken"],
            code=code_at(secret, clock()),
            **{"User-Agent": "another-agent"},
        )
        payload = data_of(body)["verifyMfa"]
        assert payload["user"]["email"] == user.email
        # The session is the first step's: its device, address and user agent.
        assert payload["session"]["deviceInfo"] == {"app": "t"}
        assert payload["session"]["userAgent"] == "phone-app/1"
        assert payload["session"]["ipAddress"] == "127.0.0.1"
        assert await _sessions(db, user) == before + 1
        me = data_of(await gql("{ me { email } }", token=payload["accessToken"]))
        assert me["me"]["email"] == user.email

        # The challenge is single use.
        again = await verify(
            gql, result["mfaRequired"]["challengeToken"], code=code_at(secret, clock() + STEP)
        )
        assert error_of(again)["extensions"]["reason"] == "MFA_CHALLENGE_INVALID"

    actions = await audit_actions(db)
    for action in (
        "auth.mfa_enrollment_started",
        "auth.mfa_enrolled",
        "auth.login_mfa_required",
        "auth.login",
    ):
        assert action in actions, actions
    login_changes = await scalar(
        db,
        "SELECT changes FROM audit_logs WHERE action = 'auth.login' AND target_id = :u",
        u=user.id,
    )
    assert login_changes["mfa"] == "totp"


async def test_secret_and_recovery_codes_are_not_stored_in_clear(
    db: Database, user: MadeUser, user_token: str
) -> None:
    clock = Clock()
    async with mfa_app(db, clock) as gql:
        secret, codes, _ = await enrol(gql, user_token, clock)
    stored = await scalar(
        db, "SELECT secret_ciphertext FROM user_mfa_factors WHERE user_id = :u", u=user.id
    )
    raw_secret = base64.b32decode(secret)
    assert stored and secret not in stored and secret.lower() not in stored
    assert raw_secret.hex() not in stored
    assert base64.b64encode(raw_secret).decode() not in stored
    hashes = await scalar(
        db,
        "SELECT string_agg(code_hash, ' ') FROM user_mfa_recovery_codes WHERE user_id = :u",
        u=user.id,
    )
    for code in codes:
        assert code not in hashes and code.replace("-", "") not in hashes
    # Nor anywhere in the audit trail.
    trail = await scalar(db, "SELECT string_agg(changes::text, ' ') FROM audit_logs")
    assert secret not in trail and all(code not in trail for code in codes)


async def test_a_code_is_accepted_once(db: Database, user: MadeUser, user_token: str) -> None:
    clock = Clock()
    start = clock.freeze_at_step_start()
    async with mfa_app(db, clock) as gql:
        secret, _, _ = await enrol(gql, user_token, clock)
        # The code that confirmed the enrolment cannot sign in (same step, same factor).
        token = await challenge(gql, user.email, TEST_PASSWORD)
        replay = await verify(gql, token, code=code_at(secret, start))
        assert error_of(replay)["extensions"] == {
            "code": "UNAUTHENTICATED",
            "reason": "MFA_CODE_INVALID",
        }
        clock.frozen = start + STEP
        fresh = code_at(secret, clock())
        assert "errors" not in await verify(gql, token, code=fresh)
        # A second sign-in inside the same window with the same code is refused.
        token = await challenge(gql, user.email, TEST_PASSWORD)
        clock.frozen = start + STEP + timedelta(seconds=20)
        refused = await verify(gql, token, code=fresh)
        assert error_of(refused)["extensions"]["reason"] == "MFA_CODE_INVALID"


async def test_clock_skew_of_one_step_either_side_and_no_more(
    db: Database, user: MadeUser, user_token: str
) -> None:
    clock = Clock()
    start = clock.freeze_at_step_start()
    async with mfa_app(db, clock) as gql:
        secret, _, _ = await enrol(gql, user_token, clock)
        now = start + 10 * STEP  # the server's step s, well after the enrolment's

        # A phone two steps behind is refused, one step behind accepted, at the last instant
        # of the server's step.
        clock.frozen = now + STEP - timedelta(milliseconds=1)
        token = await challenge(gql, user.email, TEST_PASSWORD)
        too_old = await verify(gql, token, code=code_at(secret, now - 2 * STEP))
        assert error_of(too_old)["extensions"]["reason"] == "MFA_CODE_INVALID"
        assert "errors" not in await verify(gql, token, code=code_at(secret, now - STEP))

        # A phone two steps ahead is refused, one step ahead accepted, at the first instant.
        clock.frozen = now
        token = await challenge(gql, user.email, TEST_PASSWORD)
        too_new = await verify(gql, token, code=code_at(secret, now + 2 * STEP))
        assert error_of(too_new)["extensions"]["reason"] == "MFA_CODE_INVALID"
        assert "errors" not in await verify(gql, token, code=code_at(secret, now + STEP))

        # Steps at or before the last one used are refused even inside the window.
        clock.frozen = now + STEP
        token = await challenge(gql, user.email, TEST_PASSWORD)
        behind = await verify(gql, token, code=code_at(secret, now))
        assert error_of(behind)["extensions"]["reason"] == "MFA_CODE_INVALID"
        assert "errors" not in await verify(gql, token, code=code_at(secret, now + 2 * STEP))


async def test_recovery_code_signs_in_once(db: Database, user: MadeUser, user_token: str) -> None:
    clock = Clock()
    async with mfa_app(db, clock) as gql:
        _, codes, _ = await enrol(gql, user_token, clock)
        token = await challenge(gql, user.email, TEST_PASSWORD)
        signed_in = data_of(await verify(gql, token, recovery_code=codes[0]))["verifyMfa"]
        left = data_of(await gql(MY_MFA, token=signed_in["accessToken"]))["me"]["mfa"]
        assert left["recoveryCodesLeft"] == 9

        token = await challenge(gql, user.email, TEST_PASSWORD)
        spent = await verify(gql, token, recovery_code=codes[0])
        assert error_of(spent)["extensions"]["reason"] == "MFA_CODE_INVALID"
        # Typed without the dash and in capitals, another code works.
        loose = codes[1].replace("-", "").upper()
        assert "errors" not in await verify(gql, token, recovery_code=loose)
    changes = await scalar(
        db,
        "SELECT json_agg(changes ORDER BY created_at) FROM audit_logs WHERE action = 'auth.login'",
    )
    assert [c["mfa"] for c in changes] == ["recovery_code", "recovery_code"]
    assert changes[-1]["recovery_codes_left"] == 8


async def test_an_expired_challenge_is_refused(
    db: Database, user: MadeUser, user_token: str
) -> None:
    clock = Clock()
    async with mfa_app(db, clock) as gql:
        secret, _, _ = await enrol(gql, user_token, clock)
        token = await challenge(gql, user.email, TEST_PASSWORD)
        clock.offset = timedelta(minutes=5, seconds=1)
        late = await verify(gql, token, code=code_at(secret, clock()))
        assert error_of(late)["extensions"] == {
            "code": "UNAUTHENTICATED",
            "reason": "MFA_CHALLENGE_INVALID",
        }
    assert await _sessions(db, user) == 1  # only the fixture's


async def test_five_wrong_codes_end_the_challenge(
    db: Database, user: MadeUser, user_token: str
) -> None:
    clock = Clock()
    start = clock.freeze_at_step_start()
    async with mfa_app(db, clock) as gql:
        secret, _, _ = await enrol(gql, user_token, clock)
        clock.frozen = start + 5 * STEP
        right = code_at(secret, clock())
        wrong = f"{(int(right) + 1) % 1_000_000:06d}"
        token = await challenge(gql, user.email, TEST_PASSWORD)
        reasons = [
            error_of(await verify(gql, token, code=wrong))["extensions"]["reason"] for _ in range(5)
        ]
        assert reasons == ["MFA_CODE_INVALID"] * 4 + ["MFA_CHALLENGE_INVALID"]
        ended = await verify(gql, token, code=right)
        assert error_of(ended)["extensions"]["reason"] == "MFA_CHALLENGE_INVALID"
        # A new sign-in gets a new challenge, and the right code works.
        token = await challenge(gql, user.email, TEST_PASSWORD)
        assert "errors" not in await verify(gql, token, code=right)
    failed = await scalar(db, "SELECT count(*) FROM audit_logs WHERE action = 'auth.mfa_failed'")
    assert failed == 5


async def test_wrong_codes_are_limited_per_account_across_challenges(
    db: Database, user: MadeUser, user_token: str
) -> None:
    clock = Clock()
    start = clock.freeze_at_step_start()
    async with mfa_app(db, clock, auth={"mfa_max_failures_per_account": 6}) as gql:
        secret, _, _ = await enrol(gql, user_token, clock)
        clock.frozen = start + 5 * STEP
        right = code_at(secret, clock())
        wrong = f"{(int(right) + 1) % 1_000_000:06d}"
        first = await challenge(gql, user.email, TEST_PASSWORD)
        for _ in range(5):
            await verify(gql, first, code=wrong)
        second = await challenge(gql, user.email, TEST_PASSWORD)
        sixth = await verify(gql, second, code=wrong)
        assert error_of(sixth)["extensions"]["reason"] == "MFA_CODE_INVALID"
        limited = await verify(gql, second, code=right)  # even the right code, past the limit
        error = error_of(limited)
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert error["extensions"]["retryAfter"] >= 1
    assert await scalar(db, "SELECT count(*) FROM login_attempts WHERE kind = 'mfa'") == 7


async def test_enrolment_needs_a_recent_sign_in_or_the_password(
    db: Database, user: MadeUser, user_token: str
) -> None:
    clock = Clock()
    clock.offset = timedelta(minutes=6)  # the fixture's session signed in 6 minutes ago
    async with mfa_app(db, clock) as gql:
        stale = error_of(await gql(START, token=user_token))
        assert stale["extensions"] == {
            "code": "FORBIDDEN",
            "reason": "REAUTHENTICATION_REQUIRED",
        }
        wrong = error_of(await gql(START, {"p": "not the password"}, token=user_token))
        assert wrong["extensions"]["code"] == "BAD_USER_INPUT"
        assert wrong["extensions"]["fields"] == {"password": "is incorrect"}
        started = data_of(await gql(START, {"p": TEST_PASSWORD}, token=user_token))
        secret = started["startTotpEnrollment"]["secret"]
        code = code_at(secret, clock())
        assert (
            error_of(await gql(CONFIRM, {"c": code}, token=user_token))["extensions"]["reason"]
            == "REAUTHENTICATION_REQUIRED"
        )
        confirmed = await gql(CONFIRM, {"c": code, "p": TEST_PASSWORD}, token=user_token)
        assert len(data_of(confirmed)["confirmTotpEnrollment"]) == 10
        # A second enrolment while one is active is a conflict.
        again = error_of(await gql(START, {"p": TEST_PASSWORD}, token=user_token))
        assert again["extensions"] == {"code": "CONFLICT", "reason": "MFA_ALREADY_ENROLLED"}


async def test_regenerating_codes_and_removing_the_factor_end_other_sessions(
    db: Database, settings: Settings, user: MadeUser, user_token: str
) -> None:
    clock = Clock()
    async with mfa_app(db, clock) as gql:
        _, old_codes, factor_id = await enrol(gql, user_token, clock)
        other = await session_token(db, settings, user)
        new_codes = data_of(await gql("mutation { regenerateRecoveryCodes }", token=user_token))[
            "regenerateRecoveryCodes"
        ]
        assert len(new_codes) == 10 and not set(new_codes) & set(old_codes)
        assert error_of(await gql("{ me { id } }", token=other))["extensions"]["code"] == (
            "UNAUTHENTICATED"
        )
        token = await challenge(gql, user.email, TEST_PASSWORD)
        old = await verify(gql, token, recovery_code=old_codes[0])
        assert error_of(old)["extensions"]["reason"] == "MFA_CODE_INVALID"
        assert "errors" not in await verify(gql, token, recovery_code=new_codes[0])

        remove = "mutation($id: ID!, $p: String!) { removeMfaFactor(id: $id, password: $p) }"
        other = await session_token(db, settings, user)
        wrong = error_of(await gql(remove, {"id": factor_id, "p": "nope"}, token=user_token))
        assert wrong["extensions"]["code"] == "BAD_USER_INPUT"
        removed = await gql(remove, {"id": factor_id, "p": TEST_PASSWORD}, token=user_token)
        assert data_of(removed)["removeMfaFactor"] is True
        assert error_of(await gql("{ me { id } }", token=other))["extensions"]["code"] == (
            "UNAUTHENTICATED"
        )
        assert data_of(await gql("{ me { id } }", token=user_token))["me"]["id"] == str(user.id)
        assert data_of(await gql(MY_MFA, token=user_token))["me"]["mfa"] == {
            "enabled": False,
            "recoveryCodesLeft": 0,
            "factors": [],
        }
        # Without a factor, login answers tokens again.
        result = data_of(await login(gql, user.email, TEST_PASSWORD))["login"]
        assert result["accessToken"] and result["mfaRequired"] is None
    rows = await scalar(
        db,
        "SELECT json_object_agg(action, changes) FROM audit_logs "
        "WHERE action IN ('auth.mfa_recovery_codes_regenerated', 'auth.mfa_factor_removed')",
    )
    assert rows["auth.mfa_recovery_codes_regenerated"]["revoked_sessions"] == 1
    assert rows["auth.mfa_factor_removed"]["last"] is True
    # The other token's session and the one the recovery code signed in.
    assert rows["auth.mfa_factor_removed"]["revoked_sessions"] == 2


async def test_bad_input_gets_coded_errors(db: Database, user: MadeUser, user_token: str) -> None:
    clock = Clock()
    async with mfa_app(db, clock) as gql:
        await enrol(gql, user_token, clock)
        token = await challenge(gql, user.email, TEST_PASSWORD)
        for kwargs in ({}, {"code": "123456", "recovery_code": "abcde-fghij"}):
            body = await verify(gql, token, **kwargs)
            assert error_of(body)["extensions"]["code"] == "BAD_USER_INPUT"
        for code in ("12ab56", "1234567", "\x00" * 6, "9" * 10_000):
            body = await verify(gql, token, code=code)
            assert error_of(body)["extensions"]["code"] == "BAD_USER_INPUT", code
        bogus = await verify(gql, "not-a-challenge", code="123456")
        assert error_of(bogus)["extensions"]["reason"] == "MFA_CHALLENGE_INVALID"
        # Anonymous callers cannot enrol.
        assert error_of(await gql(START))["extensions"]["code"] == "UNAUTHENTICATED"
        # None of these cost the challenge an attempt.
        attempts = await scalar(db, "SELECT max(attempts) FROM mfa_challenges")
        assert attempts == 0
        assert json.dumps(await gql("{ __typename }"))  # the service still answers


async def test_one_code_signs_in_once_under_concurrency(
    db: Database, user: MadeUser, user_token: str
) -> None:
    clock = Clock()
    start = clock.freeze_at_step_start()
    # 14 refusals below: the per-account limit is not what this test is about.
    async with mfa_app(db, clock, auth={"mfa_max_failures_per_account": 100}) as gql:
        secret, codes, _ = await enrol(gql, user_token, clock)
        clock.frozen = start + STEP
        code = code_at(secret, clock())
        tokens = [await challenge(gql, user.email, TEST_PASSWORD) for _ in range(16)]
        by_code = await asyncio.gather(*(verify(gql, t, code=code) for t in tokens[:8]))
        by_recovery = await asyncio.gather(
            *(verify(gql, t, recovery_code=codes[0]) for t in tokens[8:])
        )
    for results in (by_code, by_recovery):
        assert sum("errors" not in body for body in results) == 1, results
        refused = [error_of(body)["extensions"]["reason"] for body in results if "errors" in body]
        assert refused == ["MFA_CODE_INVALID"] * 7


async def test_a_changed_key_refuses_codes_without_an_internal_error(
    db: Database, user: MadeUser, user_token: str
) -> None:
    clock = Clock()
    start = clock.freeze_at_step_start()
    async with mfa_app(db, clock) as gql:
        secret, _, _ = await enrol(gql, user_token, clock)
    clock.frozen = start + STEP
    other_key = {"mfa_encryption_key": "another-mfa-key-" + "k" * 40}
    async with mfa_app(db, clock, auth=other_key) as gql:
        token = await challenge(gql, user.email, TEST_PASSWORD)
        body = await verify(gql, token, code=code_at(secret, clock()))
        assert error_of(body)["extensions"] == {
            "code": "UNAUTHENTICATED",
            "reason": "MFA_CODE_INVALID",
        }
