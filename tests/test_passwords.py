"""Password hashing and rules, without HTTP: pre-hash, cost, worker threads, common list."""

from __future__ import annotations

import asyncio
import os
import time

import bcrypt
import pytest

from gql_api import validation
from gql_api.auth import passwords
from gql_api.config import AuthSettings


def test_default_cost_is_12() -> None:
    assert AuthSettings().bcrypt_rounds == 12


def test_passwords_longer_than_72_bytes_count_in_full() -> None:
    long_a = "a" * 100
    long_b = "a" * 99 + "b"
    hashed = passwords.hash_password_sync(long_a, 4)
    assert passwords.verify_password_sync(long_a, hashed)
    assert not passwords.verify_password_sync(long_b, hashed)
    # Raw bcrypt could not even take it: bcrypt >= 5 refuses more than 72 bytes.
    with pytest.raises(ValueError):
        bcrypt.hashpw(long_a.encode(), bcrypt.gensalt(4))


def test_prehash_is_44_ascii_bytes_without_nul() -> None:
    for password in ("", "x", "ü" * 128, "\U0001f511" * 128):
        pre = passwords._prehash(password)
        assert len(pre) == 44 and b"\x00" not in pre and pre.isascii()


def test_cost_is_read_and_old_costs_need_rehash() -> None:
    hashed = passwords.hash_password_sync("whatever-it-is", 4)
    assert passwords.hash_cost(hashed) == 4
    assert not passwords.needs_rehash(hashed, 4)
    assert passwords.needs_rehash(hashed, 5)
    assert passwords.needs_rehash("not a bcrypt hash", 4)


def test_malformed_stored_hash_never_matches() -> None:
    assert passwords.verify_password_sync("x", "garbage") is False


def test_thread_pool_is_capped_at_the_core_count() -> None:
    assert passwords._executor._max_workers == (os.cpu_count() or 2)


async def test_hashing_does_not_block_the_event_loop() -> None:
    """While a cost-12 hash runs, the loop keeps ticking every few milliseconds."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    started = time.perf_counter()
    hashed = await passwords.hash_password("a-long-enough-password", 12)
    elapsed = time.perf_counter() - started
    done.set()
    await task
    assert passwords.hash_cost(hashed) == 12
    assert elapsed > 0.05  # it really did take time...
    assert len(gaps) >= 5  # ...during which the loop ran
    assert max(gaps) < elapsed * 0.8  # a blocked loop would show one gap as long as the hash


async def test_dummy_check_costs_like_a_real_one() -> None:
    assert await passwords.verify_dummy("anything", 4) is False


def test_common_list_is_10000_entries_loaded_once() -> None:
    first = validation._common_passwords()
    assert isinstance(first, frozenset) and len(first) == 10_000
    assert validation._common_passwords() is first
    assert all(entry == entry.lower() for entry in first)
    assert validation.is_common_password("PASSWORD") and validation.is_common_password("qwerty")
    assert not validation.is_common_password("tangerine-Velvet-42-orbit")


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("12345678", False),
        ("abcdefgh", False),
        ("correct horse battery staple", True),
        ("        ", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("short", False),
    ],
)
def test_password_rules(value: str, ok: bool) -> None:
    if ok:
        assert validation.password(value) == value  # never trimmed or altered
    else:
        with pytest.raises(validation.InvalidValue):
            validation.password(value)


def test_email_rules() -> None:
    assert validation.email("  Mixed.Case@Example.ORG ") == "mixed.case@example.org"
    for bad in ("no-at-sign", "a@b", "two@@example.com", "x" * 250 + "@example.com", "a\x00@b.co"):
        with pytest.raises(validation.InvalidValue):
            validation.email(bad)


def test_name_rules() -> None:
    assert validation.name("  Zoë ") == "Zoë"
    for bad in ("", "   ", "n" * 101):
        with pytest.raises(validation.InvalidValue):
            validation.name(bad)
