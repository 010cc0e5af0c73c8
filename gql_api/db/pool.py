"""The pool's statistics and liveness: the counters SQLAlchemy does not keep itself (waits,
closes for idle time and for lifetime), which ``dbPoolStats`` reports, and the ping of a
connection that sat idle."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import ConnectionPoolEntry, Pool

from gql_api.config import DatabaseSettings
from gql_api.db.sqlalchemy_internals import intercept_checkouts, intercept_returns

# A pooled connection idle for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_S = 1.0


def pool_sizes(settings: DatabaseSettings) -> tuple[int, int]:
    """The pool's ``pool_size`` (idle connections kept) and ``max_overflow`` (opened beyond it
    under load, closed on return): together at most ``max_open_conns``."""
    pool_size = max(settings.max_idle_conns, 1)
    return pool_size, max(settings.max_open_conns - pool_size, 0)


@dataclass
class PoolCounters:
    """Pool events SQLAlchemy does not count for us (cumulative since the engine was made).

    ``wait_count``/``wait_duration_s``: checkouts that found the pool at capacity and had to
    wait for a connection to come back (like Go's ``DBStats.WaitCount``/``WaitDuration``).
    ``closed_max_idle``: connections closed on return because the pool already kept
    ``max_idle_conns`` idle ones.
    """

    opened: int = 0
    closed: int = 0
    wait_count: int = 0
    wait_duration_s: float = 0.0
    closed_max_idle: int = 0
    closed_max_idle_time: int = 0
    closed_max_lifetime: int = 0
    invalidated: int = 0


def watch_pool(
    pool: Pool,
    settings: DatabaseSettings,
    counters: PoolCounters,
    listeners: list[Callable[[], None]],
) -> None:
    """Keep ``counters`` for ``pool``; close connections idle past ``conn_max_idle_time``; ping
    one that sat idle before handing it out; call ``listeners`` after each checkout and return."""
    max_idle = settings.conn_max_idle_time.total_seconds()
    max_lifetime = settings.conn_max_lifetime.total_seconds()
    time_waits(pool, settings, counters, listeners)

    @event.listens_for(pool, "connect")
    def _connect(dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
        counters.opened += 1
        record.info["opened_at"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checkout(dbapi_conn: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
        returned_at = record.info.get("checked_in_at")
        if max_idle and returned_at is not None and time.monotonic() - returned_at > max_idle:
            counters.closed_max_idle_time += 1
            record.info["idle_expired"] = True
            # The pool closes this connection and hands out a fresh one.
            raise DisconnectionError("connection idle longer than conn_max_idle_time")
        if returned_at is not None and time.monotonic() - returned_at > PING_AFTER_IDLE_S:
            # A connection in steady use is alive; one that sat idle may have been cut
            # (server restart, network): ping it, and let the pool replace it if dead.
            try:
                dbapi_conn.ping()
            except Exception as exc:
                raise DisconnectionError("connection failed its liveness ping") from exc

    @event.listens_for(pool, "checkin")
    def _checkin(dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(pool, "close")
    def _close(dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
        counters.closed += 1
        # pool_recycle closes a connection past conn_max_lifetime at its next checkout.
        started = getattr(record, "starttime", 0)
        if record.info.pop("idle_expired", False):
            return
        if max_lifetime and started and time.time() - started > max_lifetime:
            counters.closed_max_lifetime += 1

    @event.listens_for(pool, "invalidate")
    def _invalidate(dbapi_conn: Any, record: ConnectionPoolEntry, exc: Any) -> None:
        counters.invalidated += 1


def time_waits(
    pool: Any,
    settings: DatabaseSettings,
    counters: PoolCounters,
    listeners: list[Callable[[], None]],
) -> None:
    """Count checkouts that had to wait, and overflow connections closed on return.

    The pool has no event before a checkout, so its checkouts and returns are intercepted
    on this instance (``gql_api.db.sqlalchemy_internals``; ``Database.dispose()`` makes a new
    pool and intercepts it again). Its state is read through its public counters.
    """
    _pool_size, max_overflow = pool_sizes(settings)

    def timed_checkout(take: Callable[[], Any]) -> Any:
        # At capacity: every connection is out and no overflow is left, so this will wait.
        saturated = pool.checkedin() == 0 and pool.overflow() >= max_overflow
        started = time.perf_counter() if saturated else 0.0
        try:
            return take()
        finally:
            if saturated:
                counters.wait_count += 1
                counters.wait_duration_s += time.perf_counter() - started
            for listener in listeners:
                listener()

    def counted_return(give_back: Callable[[], None]) -> None:
        if pool.checkedin() >= pool.size():
            counters.closed_max_idle += 1  # the pool closes what it cannot keep
        give_back()
        for listener in listeners:
            listener()

    intercept_checkouts(pool, timed_checkout)
    intercept_returns(pool, counted_return)
