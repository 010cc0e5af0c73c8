"""The service behind a real PgBouncer in transaction pooling mode.

PgBouncer comes from the Debian package ``pgbouncer`` (``.ci/run`` installs it when missing);
without it the test is skipped with the reason. With ``database.disable_prepared_statements``
the app uses no statement caches and unique statement names, and sends no startup parameters
PgBouncer refuses.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from gql_api.db import Database
from gql_api.web.app import create_app
from tests.auth_support import ok_data
from tests.conftest import GraphQLClient, error_codes, insert_user, make_settings, session_token
from tests.realtime_support import VIEWER_EVENTS, graphql, open_client, servers, subscribed
from tests.server_support import free_port


def _pgbouncer() -> str | None:
    found = shutil.which("pgbouncer")
    if found:
        return found
    return "/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None


def _run_as() -> list[str]:
    """PgBouncer refuses to run as root: drop to the embedded server's user (it can reach that
    server's socket) or to nobody."""
    if os.geteuid() != 0:
        return []
    for name in ("embedded_postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return ["-u", name]
    pytest.skip("running as root and no unprivileged user for PgBouncer")


@pytest.fixture
async def bouncer_url(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    binary = _pgbouncer()
    if binary is None:
        pytest.skip("pgbouncer is not installed (Debian package `pgbouncer`; .ci/run installs it)")
    target = urlsplit(database_url)
    query = parse_qs(target.query)
    host = query.get("host", [target.hostname or "127.0.0.1"])[0]
    port = query.get("port", [str(target.port or 5432)])[0]
    dbname = target.path.lstrip("/")
    listen = free_port()
    config = tmp_path / "pgbouncer.ini"
    config.write_text(
        "[databases]\n"
        f"{dbname} = host={host} port={port} dbname={dbname} user={target.username or 'postgres'}\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {listen}\n"
        "unix_socket_dir =\n"
        "auth_type = any\n"
        "pool_mode = transaction\n"
        # Few server connections for many clients: statements of different clients share them.
        "default_pool_size = 2\n"
        "max_client_conn = 200\n"
        "ignore_startup_parameters = extra_float_digits\n"
        "server_reset_query =\n",
        encoding="utf-8",
    )
    os.chmod(config, 0o644)
    process = subprocess.Popen(
        [binary, *_run_as(), str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"pgbouncer exited: {process.stderr.read() if process.stderr else ''}")
            try:
                with socket.create_connection(("127.0.0.1", listen), timeout=0.2):
                    break
            except OSError:
                if asyncio.get_running_loop().time() > deadline:
                    pytest.fail(f"pgbouncer did not listen on 127.0.0.1:{listen} in 30 s")
                await asyncio.sleep(0.05)
        yield f"postgresql://postgres@127.0.0.1:{listen}/{dbname}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


PAYLOAD = "accessToken refreshToken user { id email }"


async def test_auth_and_users_flows_through_pgbouncer(bouncer_url: str, db: Database) -> None:
    # ``db`` (direct) has migrated the test database and emptied its tables.
    settings = make_settings(
        bouncer_url, database={"disable_prepared_statements": True, "max_open_conns": 20}
    )
    bounced = Database(settings.database, bouncer_url, None)
    try:
        admin = await insert_user(bounced, email="bouncer-admin@example.com", role="admin")
        admin_token = await session_token(bounced, settings, admin)
        app = create_app(settings, bounced)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40001))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                gql = GraphQLClient(http)
                await _flow(gql, admin_token)
    finally:
        await bounced.dispose()


async def _flow(gql: GraphQLClient, admin_token: str) -> None:
    password = "Bouncy-Castle-42-orbit"
    registered = await ok_data(
        gql,
        f"mutation($i: RegisterInput!) {{ register(input: $i) {{ {PAYLOAD} }} }}",
        {
            "i": {
                "email": "bounced@example.com",
                "password": password,
                "firstName": "B",
                "lastName": "Ouncer",
            }
        },
    )
    user_id = registered["register"]["user"]["id"]
    login = await ok_data(
        gql,
        f"mutation($i: LoginInput!) {{ login(input: $i) {{ {PAYLOAD} }} }}",
        {"i": {"email": "bounced@example.com", "password": password}},
    )
    token = login["login"]["accessToken"]

    # Many requests at once over 2 server connections: statements of different clients
    # interleave on the same server connections.
    results = await asyncio.gather(
        *(
            gql("{ me { id email profile { preferences } sessions { current } } }", token=token)
            for _ in range(30)
        )
    )
    for body in results:
        assert "errors" not in body, body
        assert body["data"]["me"]["id"] == user_id

    refreshed = await ok_data(
        gql,
        f"mutation($t: String!) {{ refreshToken(refreshToken: $t) {{ {PAYLOAD} }} }}",
        {"t": login["login"]["refreshToken"]},
    )
    token = refreshed["refreshToken"]["accessToken"]
    listing = await ok_data(
        gql, "{ users(first: 10) { edges { node { email } } } }", token=admin_token
    )
    emails = {edge["node"]["email"] for edge in listing["users"]["edges"]}
    assert {"bounced@example.com", "bouncer-admin@example.com"} <= emails
    one = await ok_data(
        gql, "query($id: ID!) { user(id: $id) { email } }", {"id": user_id}, token=admin_token
    )
    assert one["user"]["email"] == "bounced@example.com"
    assert (await ok_data(gql, "mutation { logout }", token=token))["logout"] is True
    assert error_codes(await gql("{ me { id } }", token=token)) == ["UNAUTHENTICATED"]


async def test_subscriptions_behind_pgbouncer_listen_directly(
    bouncer_url: str, database_url: str, db: Database, tmp_path: Path
) -> None:
    """In transaction mode a LISTEN would stay on whichever server connection PgBouncer picked:
    the service publishes through PgBouncer (pg_notify in the change's transaction) and listens
    on a direct connection (``realtime.listen_url``). A login and a logout made through a
    server behind PgBouncer reach a subscribed socket on it."""
    settings = make_settings(database_url)
    user = await insert_user(db, email="bounced-socket@example.com")
    token = await session_token(db, settings, user)
    with servers(
        bouncer_url,
        tmp_path,
        USER_SERVICE_DATABASE_DISABLE_PREPARED_STATEMENTS="true",
        USER_SERVICE_REALTIME_LISTEN_URL=database_url,
    ) as (server,):
        client = await open_client(server)
        try:
            await subscribed(
                client, token, "v", VIEWER_EVENTS, database_url=database_url, user_id=user.id
            )
            login = await graphql(
                server,
                "mutation($input: LoginInput!) { login(input: $input) { accessToken } }",
                input={"email": user.email, "password": user.password},
            )
            other_tab = login["data"]["login"]["accessToken"]
            created = await client.event(
                "v", 5.0, lambda d: d["viewerEvents"]["kind"] == "SESSION_CREATED"
            )
            assert created["viewerEvents"]["ownSession"] is False
            assert await graphql(server, "mutation { logout }", other_tab) == {
                "data": {"logout": True}
            }
            revoked = await client.event(
                "v", 5.0, lambda d: d["viewerEvents"]["kind"] == "SESSION_REVOKED"
            )
            assert revoked["viewerEvents"]["reason"] == "logout"
        finally:
            await client.ws.close()
        assert "Traceback" not in server.log(), server.errors()
