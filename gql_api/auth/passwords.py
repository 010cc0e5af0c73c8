"""Password hashing: bcrypt over a SHA-256 pre-hash, always in a worker thread.

bcrypt reads at most 72 bytes and bcrypt >= 5 raises beyond that. Passwords of up to 128
characters of any script (up to 512 UTF-8 bytes) must count in full, so we hash
``base64(sha256(password))`` (44 ASCII bytes, no NUL) with bcrypt. The base64 step keeps NUL
bytes of the digest from cutting the input short, the known flaw of feeding a raw digest.

bcrypt costs ~320 ms at cost 12 on this machine and releases the GIL, so it runs in a thread
pool: the event loop never waits on a hash. The pool keeps one core out of hashing (one thread
on two cores): a login storm then queues its hashes instead of taking every core from the event
loop and PostgreSQL, which kept the other requests' p99 at 3.2x its calm value on this 2-core
machine with a thread per core (bench Q4).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

import bcrypt

from gql_api.observability import tracing

_COST = re.compile(rb"^\$2[abxy]\$(\d\d)\$")


def _hashing_threads() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) - 1)


_executor = ThreadPoolExecutor(max_workers=_hashing_threads(), thread_name_prefix="bcrypt")


def _prehash(password: str) -> bytes:
    return base64.b64encode(hashlib.sha256(password.encode("utf-8")).digest())


def hash_password_sync(password: str, rounds: int) -> str:
    return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds)).decode("ascii")


def verify_password_sync(password: str, password_hash: str) -> bool:
    try:
        return bcrypt.checkpw(_prehash(password), password_hash.encode("ascii"))
    except ValueError:  # a malformed stored hash never matches
        return False


async def hash_password(password: str, rounds: int) -> str:
    loop = asyncio.get_running_loop()
    with tracing.span("password.hash", _attributes("hash", rounds)):
        return await loop.run_in_executor(_executor, hash_password_sync, password, rounds)


async def verify_password(password: str, password_hash: str) -> bool:
    loop = asyncio.get_running_loop()
    with tracing.span("password.verify", _attributes("verify", hash_cost(password_hash))):
        return await loop.run_in_executor(_executor, verify_password_sync, password, password_hash)


@lru_cache(maxsize=8)
def _dummy_hash(rounds: int) -> str:
    return hash_password_sync("not-a-real-password: timing equaliser", rounds)


async def verify_dummy(password: str, rounds: int) -> bool:
    """Spend the time a real check would, so unknown accounts answer as slowly as known ones."""
    loop = asyncio.get_running_loop()
    with tracing.span("password.verify_dummy", _attributes("verify_dummy", rounds)):
        dummy = await loop.run_in_executor(_executor, _dummy_hash, rounds)
        await verify_password(password, dummy)
    return False


def _attributes(operation: str, cost: int | None) -> dict[str, Any] | None:
    """A hashing span's attributes: what was done and at which bcrypt cost, never the input."""
    if tracing.CURRENT.get() is None:
        return None
    return {"password.operation": operation, "password.bcrypt_cost": cost or 0}


def hash_cost(password_hash: str) -> int | None:
    match = _COST.match(password_hash.encode("ascii", "ignore"))
    return int(match.group(1)) if match else None


def needs_rehash(password_hash: str, rounds: int) -> bool:
    cost = hash_cost(password_hash)
    return cost is None or cost != rounds
