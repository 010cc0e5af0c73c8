"""Property tests (hypothesis) for inputs through HTTP: unicode names, NUL bytes, huge strings,
odd e-mail forms. Every answer is data or a known client error; never a server error, never a
silently mangled value."""

from __future__ import annotations

import itertools
from typing import Any

from email_validator import EmailNotValidError, validate_email
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gql_api import validation
from gql_api.db import Database
from tests.hardening_support import app_client, post

REGISTER = """
mutation($input: RegisterInput!) {
  register(input: $input) { user { email firstName lastName } }
}
"""
PROPERTY_SETTINGS = settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_counter = itertools.count()


def unique_email() -> str:
    return f"prop-{next(_counter)}@example.com"


def codes(body: dict[str, Any]) -> set[str]:
    return {e["extensions"]["code"] for e in body.get("errors") or []}


# Registrations from one address are rate-limited; these tests send many on purpose.
NO_REGISTER_LIMIT = {"auth": {"register_max_per_address": 1_000_000}}


def _valid_name(value: str) -> bool:
    """The documented rule: 1-100 characters after trimming, no NUL."""
    return "\x00" not in value and 0 < len(value.strip()) <= 100


@PROPERTY_SETTINGS
@given(first=st.text(max_size=150), last=st.text(min_size=1, max_size=20))
async def test_any_unicode_name_is_stored_exactly_or_refused(
    db: Database, first: str, last: str
) -> None:
    async with app_client(db, **NO_REGISTER_LIMIT) as http:
        variables = {
            "input": {
                "email": unique_email(),
                "password": "a long enough password",
                "firstName": first,
                "lastName": last,
            }
        }
        body = await post(http, REGISTER, variables)
    if _valid_name(first) and _valid_name(last):
        # A fresh e-mail and valid names: the registration must go through, names kept exactly.
        assert "errors" not in body, body
        user = body["data"]["register"]["user"]
        assert (user["firstName"], user["lastName"]) == (first.strip(), last.strip())
    else:
        assert codes(body) == {"BAD_USER_INPUT"}, body
        fields = body["errors"][0]["extensions"]["fields"]
        assert ("firstName" in fields) == (not _valid_name(first)), body


@PROPERTY_SETTINGS
@given(
    email=st.one_of(
        st.emails(),
        st.text(max_size=60),
        st.builds(
            lambda a, b: f"{a}@{b}",
            st.text(min_size=1, max_size=20),
            st.text(min_size=1, max_size=20),
        ),
    )
)
async def test_odd_email_forms(db: Database, email: str) -> None:
    async with app_client(db, **NO_REGISTER_LIMIT) as http:
        variables = {
            "input": {
                "email": email,
                "password": "a long enough password",
                "firstName": "A",
                "lastName": "B",
            }
        }
        body = await post(http, REGISTER, variables)
    expected = _expected_email(email)
    if expected is None:
        assert codes(body) == {"BAD_USER_INPUT"}, body
        assert "email" in body["errors"][0]["extensions"]["fields"], body
    elif expected in _registered:
        assert codes(body) == {"CONFLICT"}, body  # an earlier example had the same address
    else:
        # email-validator accepts it: the service must register it, normalised and lower-cased.
        assert "errors" not in body, body
        assert body["data"]["register"]["user"]["email"] == expected
        _registered.add(expected)


_registered: set[str] = set()  # the e-mails registered by earlier examples (same database)


def _expected_email(raw: str) -> str | None:
    """What the service should store for ``raw``, by the library it relies on; None: refused."""
    value = raw.strip()
    if "\x00" in value or len(value) > validation.EMAIL_MAX_LENGTH:
        return None
    try:
        return validate_email(value, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


@PROPERTY_SETTINGS
@given(
    field=st.sampled_from(["email", "password", "firstName", "lastName"]),
    size=st.integers(min_value=129, max_value=500_000),
    nul=st.booleans(),
)
async def test_huge_strings_and_nul_bytes_are_bad_user_input(
    db: Database, field: str, size: int, nul: bool
) -> None:
    values = {
        "email": unique_email(),
        "password": "a long enough password",
        "firstName": "A",
        "lastName": "B",
    }
    values[field] = ("\x00" if nul else "") + "x" * size
    async with app_client(db, **NO_REGISTER_LIMIT) as http:
        body = await post(http, REGISTER, {"input": values})
    assert codes(body) == {"BAD_USER_INPUT"}, body
    assert field in body["errors"][0]["extensions"]["fields"]
