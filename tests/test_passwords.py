"""Password hashing and rules, without HTTP: pre-hash, cost, worker threads, common list."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import threading
import time
from collections.abc import Awaitable, Callable
from importlib import resources

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


def test_passwords_of_any_script_and_length_count_in_full() -> None:
    for password in ("", "x", "ü" * 128, "\U0001f511" * 128):
        hashed = passwords.hash_password_sync(password, 4)
        assert passwords.verify_password_sync(password, hashed)
        assert not passwords.verify_password_sync(password[:-1] + "?", hashed)


def _passwords_whose_sha256_starts_with_nul(count: int) -> list[str]:
    found: list[str] = []
    n = 0
    while len(found) < count:
        candidate = f"candidate-{n}"
        if hashlib.sha256(candidate.encode()).digest()[0] == 0:
            found.append(candidate)
        n += 1
    return found


def test_digests_starting_with_nul_do_not_collide() -> None:
    """Feeding bcrypt a raw SHA-256 digest would cut it at the first NUL byte, so every password
    whose digest starts with NUL would match every other one."""
    first, second = _passwords_whose_sha256_starts_with_nul(2)
    hashed = passwords.hash_password_sync(first, 4)
    assert passwords.verify_password_sync(first, hashed)
    assert not passwords.verify_password_sync(second, hashed)


def test_cost_is_read_and_old_costs_need_rehash() -> None:
    hashed = passwords.hash_password_sync("whatever-it-is", 4)
    assert passwords.hash_cost(hashed) == 4
    assert not passwords.needs_rehash(hashed, 4)
    assert passwords.needs_rehash(hashed, 5)
    assert passwords.needs_rehash("not a bcrypt hash", 4)


def test_malformed_stored_hash_never_matches() -> None:
    assert passwords.verify_password_sync("x", "garbage") is False


async def test_hashing_leaves_one_core_to_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """A login storm hashes on all cores but one (at least one thread)."""
    cores = len(os.sched_getaffinity(0))
    lock = threading.Lock()
    running = 0
    peak = 0
    real_hashpw = bcrypt.hashpw

    def counting_hashpw(password: bytes, salt: bytes) -> bytes:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            return real_hashpw(password, salt)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(bcrypt, "hashpw", counting_hashpw)
    # Cost 10 takes tens of milliseconds: long enough for the threads to overlap.
    await asyncio.gather(*[passwords.hash_password(f"password-{i}", 10) for i in range(3 * cores)])
    assert peak == max(1, cores - 1)


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


async def _fastest_of_three(check: Callable[[], Awaitable[bool]]) -> float:
    """The fastest of three runs: load on the machine only ever makes a run slower."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        assert await check() is False
        times.append(time.perf_counter() - started)
    return min(times)


async def test_dummy_check_costs_like_a_real_one() -> None:
    """An unknown account must answer as slowly as a known one with a wrong password."""
    rounds = 10  # ~80 ms: far above the noise of a check that returns at once
    real_hash = await passwords.hash_password("the real password", rounds)
    await passwords.verify_dummy("warm up", rounds)  # its dummy hash is made once per cost

    real = await _fastest_of_three(lambda: passwords.verify_password("wrong", real_hash))
    dummy = await _fastest_of_three(lambda: passwords.verify_dummy("wrong", rounds))
    assert dummy >= 0.5 * real, (dummy, real)


def test_common_list_is_10000_entries_loaded_once() -> None:
    shipped = (resources.files("gql_api") / "data" / "common-passwords.txt.gz").read_bytes()
    entries = [line for line in gzip.decompress(shipped).decode("utf-8").splitlines() if line]
    assert len(set(entries)) == 10_000
    assert all(entry == entry.lower() for entry in entries)
    # Loaded once, 10,000 checks are a few milliseconds; loading the list again for each
    # (about 9 ms a load) would take minutes.
    deadline = time.perf_counter() + 2.0
    for entry in entries:
        assert validation.is_common_password(entry.upper()), entry
        assert time.perf_counter() < deadline, "the list is loaded again for each check"
    assert not validation.is_common_password("a passphrase nobody has leaked yet")
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
