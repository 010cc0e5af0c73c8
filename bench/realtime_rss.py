"""Memory of idle WebSocket subscriptions: one server worker (production configuration), N
authenticated sockets each subscribed to ``viewerEvents``, the worker's RSS before, with them
open (after one event has reached every one of them) and after they closed.

    python -m bench.realtime_rss [--sockets 1000] [--database-url postgresql://...]

A scratch database is created on the given server (default: the machine's PostgreSQL on
127.0.0.1:5432) and dropped at the end; the worker is stopped by its PID. Bounded: every wait
has a deadline (``--timeout``). Prints a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from bench import dataset, procs
from bench.run import MFA_KEY
from gql_api.auth.tokens import hash_token, issue_access_token, new_opaque_token
from gql_api.config import AuthSettings

GOAL_MB = 250  # bench/RESULTS.md: peak RSS per worker < 250 MB
QUERY = "subscription { viewerEvents { kind fields } }"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.realtime_rss", description=__doc__)
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds for the whole run")
    parser.add_argument("--logs-dir", type=Path, default=Path("/tmp/gql_api_realtime_rss"))
    return parser.parse_args()


async def seed(url: str, sockets: int) -> list[str]:
    """One user with ``sockets`` live sessions; an access token for each."""
    auth = AuthSettings(jwt_secret=dataset.JWT_SECRET)
    conn = await asyncpg.connect(url)
    try:
        user_id = await conn.fetchval(
            "INSERT INTO users (email, password_hash, first_name, last_name) "
            "VALUES ('rss@example.com', 'x', 'R', 'S') RETURNING id"
        )
        expires = datetime.now(UTC) + timedelta(hours=1)
        rows = await conn.fetch(
            "INSERT INTO user_sessions (user_id, token_hash, expires_at) "
            "SELECT $1, h, $3 FROM unnest($2::text[]) AS h RETURNING id",
            user_id,
            [hash_token(new_opaque_token()) for _ in range(sockets)],
            expires,
        )
    finally:
        await conn.close()
    return [
        issue_access_token(auth, user_id=user_id, session_id=row["id"], role="user")[0]
        for row in rows
    ]


async def open_socket(port: int, token: str) -> ClientConnection:
    ws = await connect(
        f"ws://{procs.HOST}:{port}/graphql",
        subprotocols=[Subprotocol("graphql-transport-ws")],
        open_timeout=30,
    )
    await ws.send(
        json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
    )
    ack = json.loads(await ws.recv())
    assert ack["type"] == "connection_ack", ack
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": QUERY}}))
    return ws


async def first_event(ws: ClientConnection) -> None:
    while True:
        message = json.loads(await ws.recv())
        if message["type"] == "ping":
            await ws.send(json.dumps({"type": "pong"}))
        elif message["type"] == "next":
            return


async def notify_all(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        user_id = await conn.fetchval("SELECT id FROM users WHERE email = 'rss@example.com'")
        await conn.execute(
            "SELECT pg_notify('gql_api_events', json_build_object('k', 'user.updated', "
            "'u', $1::text, 'f', json_build_array('probe', $2::text))::text)",
            str(user_id),
            uuid.uuid4().hex,
        )
    finally:
        await conn.close()


async def measure(app: procs.App, url: str, tokens: list[str], deadline: float) -> dict[str, Any]:
    before = procs.memory(app.pid)
    sockets: list[ClientConnection] = []
    started = time.perf_counter()
    for start in range(0, len(tokens), 50):  # 50 handshakes at a time
        batch = tokens[start : start + 50]
        sockets += await asyncio.wait_for(
            asyncio.gather(*(open_socket(app.port, t) for t in batch)),
            timeout=max(deadline - time.monotonic(), 1),
        )
    opened_s = time.perf_counter() - started
    # Every subscription registered: poll with fresh events until each socket got one.
    waiting = {id(ws): ws for ws in sockets}
    while waiting:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(waiting)} sockets never got an event")
        await notify_all(url)
        done = await asyncio.gather(
            *(asyncio.wait_for(first_event(ws), timeout=2) for ws in waiting.values()),
            return_exceptions=True,
        )
        for ws, result in zip(list(waiting.values()), done, strict=True):
            if result is None:
                del waiting[id(ws)]
    with_sockets = procs.memory(app.pid)
    await asyncio.gather(*(ws.close() for ws in sockets))
    after = procs.memory(app.pid)
    return {
        "sockets": len(sockets),
        "opened_s": opened_s,
        "rss_before": before.rss_mb,
        "rss_open": with_sockets.rss_mb,
        "rss_after": after.rss_mb,
        "hwm": after.hwm_mb,
    }


def main() -> None:
    options = parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(
        resource.RLIMIT_NOFILE, (min(hard, max(soft, options.sockets * 2 + 256)), hard)
    )
    admin = options.database_url
    name = f"gql_api_realtime_rss_{uuid.uuid4().hex[:8]}"
    url = urlsplit(admin)._replace(path=f"/{name}").geturl()

    async def create() -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(create())
    try:
        env = procs.clean_env(
            USER_SERVICE_ENV="production",
            USER_SERVICE_DATABASE_URL=url,
            USER_SERVICE_AUTH_JWT_SECRET=dataset.JWT_SECRET,
            USER_SERVICE_AUTH_MFA_ENCRYPTION_KEY=MFA_KEY,
            USER_SERVICE_REALTIME_MAX_SOCKETS_PER_USER=str(options.sockets),
        )
        subprocess.run(
            [*procs.gql_api_command(), "migrate", "up"],
            env=env,
            check=True,
            timeout=120,
            capture_output=True,
        )
        tokens = asyncio.run(seed(url, options.sockets))
        port = procs.free_port()
        log = options.logs_dir / "server.log"
        with procs.running("gql_api", procs.server_command(port), env, log, port=port) as app:
            deadline = time.monotonic() + options.timeout
            figures = asyncio.run(measure(app, url, tokens, deadline))
    finally:
        asyncio.run(drop())
    per_socket_kb = (figures["rss_open"] - figures["rss_before"]) * 1024 / figures["sockets"]
    print(
        "| sockets | RSS before (MiB) | RSS with them open | after they closed | peak (VmHWM) "
        "| per socket | goal |"
    )
    print("|---:|---:|---:|---:|---:|---:|---|")
    met = "met" if figures["hwm"] < GOAL_MB else "NOT met"
    print(
        f"| {figures['sockets']} | {figures['rss_before']:.1f} | {figures['rss_open']:.1f} "
        f"| {figures['rss_after']:.1f} | {figures['hwm']:.1f} | {per_socket_kb:.1f} KiB "
        f"| peak < {GOAL_MB} MB: {met} |"
    )
    print(f"({figures['sockets']} sockets opened and subscribed in {figures['opened_s']:.1f} s)")


if __name__ == "__main__":
    main()
