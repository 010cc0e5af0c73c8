"""A database crash and restart under load: the postmaster is SIGKILLed while clients register
users and read ``me`` with a bearer token, then started again (crash recovery, during which
PostgreSQL answers "the database system is starting up").

Every answer is JSON with a coded error (SERVICE_UNAVAILABLE or QUERY_TIMEOUT) or data, never a
500; every acknowledged registration is stored; writes succeed again once the database is back.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.pg_control import ControlledPostgres, run
from tests.server_support import RunningServer, server_env, uvicorn_server

REGISTER = "mutation($i: RegisterInput!) { register(input: $i) { accessToken user { id } } }"
ME = "{ me { id email } }"
PASSWORD = "restart test password"
CLIENTS = 6
MAX_REQUESTS_PER_CLIENT = 400  # a bound on the load whatever the timing
LOAD_BEFORE_KILL_S = 1.5
REQUEST_TIMEOUT_S = 15.0
WATCHDOG_S = 90.0  # the whole scenario, load threads included
CODED = {"SERVICE_UNAVAILABLE", "QUERY_TIMEOUT"}


@pytest.fixture
def controlled_pg(tmp_path: Path) -> Iterator[ControlledPostgres]:
    pg = ControlledPostgres(tmp_path / "pgdata")
    run(pg.migrate())
    yield pg
    pg.destroy()


@dataclass
class Answers:
    registered: list[str] = field(default_factory=list)  # acknowledged registrations
    by_kind: Counter[str] = field(default_factory=Counter)  # "status code" -> count
    bad: list[str] = field(default_factory=list)  # 500s, non-JSON bodies, uncoded errors
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, response: httpx.Response) -> dict[str, Any] | None:
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            with self.lock:
                self.by_kind[f"{kind} {response.status_code} non-json"] += 1
                self.bad.append(f"{kind} {response.status_code}: {response.text[:200]}")
            return None
        codes = [(e.get("extensions") or {}).get("code") for e in body.get("errors") or []]
        with self.lock:
            self.by_kind[f"{kind} {response.status_code} {','.join(map(str, codes)) or 'ok'}"] += 1
            if response.status_code >= 500 or any(code not in CODED for code in codes):
                self.bad.append(f"{kind} {response.status_code}: {response.text[:300]}")
        return body


def _register(http: httpx.Client, email: str) -> httpx.Response:
    variables = {"i": {"email": email, "password": PASSWORD, "firstName": "R", "lastName": "S"}}
    return http.post("/graphql", json={"query": REGISTER, "variables": variables})


def _client(
    server: RunningServer, token: str, stop: threading.Event, answers: Answers, n: int
) -> None:
    counter = itertools.count()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, timeout=REQUEST_TIMEOUT_S) as http:
        for _ in range(MAX_REQUESTS_PER_CLIENT):
            if stop.is_set():
                return
            email = f"restart-{n}-{next(counter)}@example.com"
            try:
                body = answers.record("register", _register(http, email))
                if body is not None and not body.get("errors"):
                    with answers.lock:
                        answers.registered.append(email)
                answers.record("me", http.post("/graphql", json={"query": ME}, headers=headers))
            except httpx.TransportError as exc:  # a hang or a dropped connection: a failure
                with answers.lock:
                    answers.bad.append(f"transport: {exc!r}")


def _start_again(pg: ControlledPostgres, deadline: float) -> None:
    """Start the killed server; its orphaned backends may hold shared memory for a moment."""
    while True:
        try:
            pg.start()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.slow
def test_database_restart_under_load_answers_with_codes(
    controlled_pg: ControlledPostgres, tmp_path: Path
) -> None:
    watchdog = time.monotonic() + WATCHDOG_S
    env = server_env(
        controlled_pg.url,
        USER_SERVICE_AUTH_REGISTERMAXPERADDRESS="100000",
        USER_SERVICE_DATABASE_CONNECTTIMEOUT="2s",
    )
    with uvicorn_server(env, tmp_path / "server.log") as server:
        with httpx.Client(base_url=server.url, timeout=REQUEST_TIMEOUT_S) as http:
            first = _register(http, "reader@example.com").json()
        assert not first.get("errors"), first
        token = first["data"]["register"]["accessToken"]

        stop = threading.Event()
        answers = Answers()
        clients = [
            threading.Thread(target=_client, args=(server, token, stop, answers, n), daemon=True)
            for n in range(CLIENTS)
        ]
        for client in clients:
            client.start()
        recovered_after = None
        try:
            time.sleep(LOAD_BEFORE_KILL_S)  # load before the crash (not a synchronisation)
            with answers.lock:
                before_kill = len(answers.registered)
            controlled_pg.kill()
            _start_again(controlled_pg, watchdog)
            back = time.monotonic()
            with httpx.Client(base_url=server.url, timeout=REQUEST_TIMEOUT_S) as http:
                while time.monotonic() < min(back + 30, watchdog):
                    probe = _register(http, f"probe-{time.monotonic_ns()}@example.com")
                    if probe.status_code == 200 and not probe.json().get("errors"):
                        recovered_after = time.monotonic() - back
                        break
                    time.sleep(0.1)
                ready = http.get("/readyz")
            # The clients' own writes go through again too (every pooled connection was cut).
            with answers.lock:
                at_recovery = len(answers.registered)
            load_deadline = min(time.monotonic() + 15, watchdog)
            while time.monotonic() < load_deadline:
                with answers.lock:
                    if len(answers.registered) >= at_recovery + CLIENTS:
                        break
                time.sleep(0.1)
            with answers.lock:
                after_recovery = len(answers.registered) - at_recovery
        finally:
            stop.set()
            for client in clients:
                client.join(timeout=max(1.0, watchdog - time.monotonic()))
        assert not any(client.is_alive() for client in clients), "load threads hung"
        assert server.process.poll() is None, "the server stayed up"
        server_errors = server.errors()

    summary = dict(answers.by_kind)
    assert before_kill > 0, summary
    assert recovered_after is not None, f"writes never succeeded again: {summary}"
    assert ready.status_code == 200, ready.text
    assert after_recovery >= CLIENTS, f"load did not recover: {summary}"
    assert not answers.bad, f"{answers.bad[:5]}\n{summary}\n{server_errors}"
    assert any("SERVICE_UNAVAILABLE" in kind for kind in summary), summary  # the crash was seen

    async def stored_emails() -> set[str]:
        conn = await controlled_pg.connect()
        try:
            return {r["email"] for r in await conn.fetch("SELECT email FROM users")}
        finally:
            await conn.close()

    lost = set(answers.registered) - run(stored_emails())
    assert not lost, f"acknowledged but lost: {sorted(lost)[:10]}"
