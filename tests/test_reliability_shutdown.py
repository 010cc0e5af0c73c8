"""Graceful shutdown of ``gql-api serve`` on an embedded data directory: SIGTERM stops accepting,
finishes in-flight requests, closes the pool and stops the embedded PostgreSQL; a restart on the
same data directory works, also after a SIGKILL that leaves a stale postmaster.pid behind."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.server_support import embedded_env, free_port

CREDENTIALS = 'email: "graceful@example.com", password: "graceful shutdown pw"'
REGISTER = (
    f'mutation {{ register(input: {{{CREDENTIALS}, firstName: "G", lastName: "S"}}) '
    "{ accessToken } }"
)
LOGIN = f"mutation {{ login(input: {{{CREDENTIALS}}}) {{ user {{ email }} }} }}"


def _env(data_dir: Path) -> dict[str, str]:
    return embedded_env(data_dir, USER_SERVICE_SERVER_SHUTDOWN_GRACE_PERIOD="20s")


@contextmanager
def serve(data_dir: Path, log: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gql_api.cli", "serve", "--port", str(port)],
            cwd=data_dir.parent,
            env=_env(data_dir),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def _postmaster(data_dir: Path) -> tuple[int, str, int]:
    lines = (data_dir / "postmaster.pid").read_text().splitlines()
    return int(lines[0]), lines[4], int(lines[3])


def _alive(pid: int, grace_s: float = 5.0) -> bool:
    """Whether the process still runs after a short grace (it removes its pid file just before
    it exits)."""
    deadline = time.monotonic() + grace_s
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        if time.monotonic() > deadline:
            return True
        time.sleep(0.05)


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll for a state (never sleep a guessed time): fails with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting until {what}"
        time.sleep(0.05)


def _backends_waiting_on_a_lock(dsn: str) -> int:
    async def count() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                )
            )
        finally:
            await conn.close()

    return asyncio.run(count())


def _accepts(url: str) -> bool:
    try:
        httpx.get(f"{url}/healthz", timeout=2)
    except httpx.TransportError:
        return False
    return True


def _health(url: str) -> Any:
    return httpx.post(f"{url}/graphql", json={"query": "{ health { status } }"}, timeout=10).json()


@pytest.mark.slow
def test_sigterm_finishes_in_flight_requests_and_stops_postgres(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "data" / "pgdata", tmp_path / "serve.log"
    with serve(data_dir, log) as (process, url):
        token = httpx.post(f"{url}/graphql", json={"query": REGISTER}, timeout=10).json()["data"][
            "register"
        ]["accessToken"]
        pid, socket_dir, port = _postmaster(data_dir)
        dsn = f"postgresql://postgres@/api_server?host={socket_dir}&port={port}"

        async def hold_lock(locked: threading.Event, release: threading.Event) -> None:
            conn = await asyncpg.connect(dsn)
            try:
                async with conn.transaction():
                    await conn.execute("LOCK TABLE user_profiles IN ACCESS EXCLUSIVE MODE")
                    locked.set()
                    while not release.is_set():
                        await asyncio.sleep(0.05)
            finally:
                await conn.close()

        locked, release = threading.Event(), threading.Event()
        locker = threading.Thread(target=lambda: asyncio.run(hold_lock(locked, release)))
        locker.start()
        assert locked.wait(10)
        in_flight: dict[str, Any] = {}

        def slow_request() -> None:
            response = httpx.post(
                f"{url}/graphql",
                json={"query": "{ me { email profile { bio } } }"},
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            in_flight["status"], in_flight["body"] = response.status_code, response.json()

        requester = threading.Thread(target=slow_request)
        requester.start()
        _wait_until(lambda: _backends_waiting_on_a_lock(dsn) == 1, "the request waits on the lock")
        process.send_signal(signal.SIGTERM)
        _wait_until(lambda: not _accepts(url), "the server stops accepting connections")
        assert process.poll() is None, "still finishing the in-flight request"
        assert _backends_waiting_on_a_lock(dsn) == 1, "the request is still in flight"
        release.set()
        locker.join(10)
        requester.join(30)
        assert in_flight["status"] == 200
        assert in_flight["body"] == {
            "data": {"me": {"email": "graceful@example.com", "profile": {"bio": None}}}
        }
        assert process.wait(timeout=30) == 0, log.read_text()
        assert not _alive(pid), "the embedded PostgreSQL was stopped"
        assert not (data_dir / "postmaster.pid").exists()

    # A restart on the same data directory keeps the data.
    with serve(data_dir, log) as (process, url):
        assert _health(url) == {"data": {"health": {"status": "ok"}}}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


@pytest.mark.slow
def test_restart_after_sigkill_with_a_stale_postmaster_pid(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "data" / "pgdata", tmp_path / "serve.log"
    with serve(data_dir, log) as (process, url):
        assert httpx.post(f"{url}/graphql", json={"query": REGISTER}, timeout=10).json()["data"]
        process.kill()  # the service dies; its PostgreSQL keeps running
        process.wait(timeout=10)

    with serve(data_dir, log) as (process, url):  # joins the running PostgreSQL
        assert _health(url) == {"data": {"health": {"status": "ok"}}}
        pid, _, _ = _postmaster(data_dir)
        process.kill()
        process.wait(timeout=10)
        os.kill(pid, signal.SIGKILL)  # and now PostgreSQL dies too, as in a power cut
        assert not _alive(pid)
        assert (data_dir / "postmaster.pid").exists(), "a stale postmaster.pid is left behind"

    with serve(data_dir, log) as (process, url):  # recovers and keeps the data
        login = httpx.post(
            f"{url}/graphql",
            json={"query": LOGIN},
            timeout=10,
        ).json()
        assert login == {"data": {"login": {"user": {"email": "graceful@example.com"}}}}, (
            log.read_text()
        )
        pid, _, _ = _postmaster(data_dir)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert not _alive(pid)
