"""The pool's statistics and liveness: the counters SQLAlchemy does not keep itself (waits,
closes for idle time and for lifetime), which ``dbPoolStats`` reports, the ping of a connection
that sat idle, and the closing of idle connections beyond ``max_idle_conns``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import ConnectionPoolEntry, Pool

from gql_api.config import DatabaseSettings
from gql_api.db.connection_lane import IDLE_SINCE, ConnectionLane
from gql_api.db.sqlalchemy_internals import (
    close_taken,
    intercept_checkouts,
    intercept_returns,
    run_sync,
    take_idle,
)

# A pooled connection idle for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_S = 1.0


# A connection beyond max_idle_conns is closed once it has sat idle this long, not the moment it
# comes back: under load it is wanted again within a millisecond, and a new one costs a new
# backend (fork, authentication, codecs, every statement prepared again). Closed on return, a
# page of users at 8 concurrent requests opened a connection for 6 requests in 10 and took
# 2.9x the CPU (bench/RESULTS.md, "Connections kept under load").
IDLE_EXCESS_GRACE_S = 1.0


def lane_keep_s(settings: DatabaseSettings) -> float:
    """How long a connection may stay out of the pool between direct reads
    (``gql_api.db.connection_lane``): no longer than it could sit idle in the pool unpinged,
    nor than ``conn_max_idle_time``."""
    max_idle = settings.conn_max_idle_time.total_seconds()
    return min(PING_AFTER_IDLE_S, max_idle) if max_idle > 0 else PING_AFTER_IDLE_S


def pool_sizes(settings: DatabaseSettings) -> tuple[int, int]:
    """The pool's ``pool_size`` and ``max_overflow``: every connection, up to
    ``max_open_conns``, goes back to the pool when returned (the pool hands out the most
    recently returned first, so those beyond the ones in use sink and age);
    :func:`close_idle_excess` closes those beyond ``max_idle_conns`` once idle."""
    return settings.max_open_conns, 0


def idle_kept(settings: DatabaseSettings) -> int:
    """Connections kept open however long they sit idle (``max_idle_conns``, at least one)."""
    return max(settings.max_idle_conns, 1)


def status(pool: Any, lane: ConnectionLane) -> dict[str, int]:
    """Open, in use and idle connections of ``pool``: those between two direct reads (in
    ``lane``) are idle ones."""
    between = len(lane)
    in_use = int(pool.checkedout()) - between
    idle = int(pool.checkedin()) + between
    return {"open": in_use + idle, "in_use": in_use, "idle": idle}


def limits(settings: DatabaseSettings) -> dict[str, float]:
    """The configured limits, as ``dbPoolStats`` reports them."""
    return {
        "max_open": settings.max_open_conns,
        "max_idle": idle_kept(settings),
        "max_lifetime_s": settings.conn_max_lifetime.total_seconds(),
        "max_idle_time_s": settings.conn_max_idle_time.total_seconds(),
        "timeout_s": settings.pool_timeout.total_seconds(),
    }


async def close_idle_excess(
    pools: list[tuple[Pool, PoolCounters]], settings: DatabaseSettings, idle_for_s: float
) -> int:
    """Close each pool's idle connections beyond ``max_idle_conns`` that have sat idle for
    ``idle_for_s`` seconds or more; returns how many."""
    closed = 0
    before = time.monotonic() - idle_for_s
    for pool, counters in pools:
        while (record := take_idle(pool, idle_kept(settings), before)) is not None:
            counters.closed_max_idle += 1
            closed += 1
            await run_sync(close_taken, pool, record)  # closing awaits the driver
    return closed


@dataclass
class PoolCounters:
    """Pool events SQLAlchemy does not count for us (cumulative since the engine was made).

    ``wait_count``/``wait_duration_s``: checkouts that found the pool at capacity and had to
    wait for a connection to come back (like Go's ``DBStats.WaitCount``/``WaitDuration``).
    ``closed_max_idle``: connections closed because they sat idle (``IDLE_EXCESS_GRACE_S``)
    while ``max_idle_conns`` others were idle too.
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
    lane: ConnectionLane,
) -> None:
    """Keep ``counters`` for ``pool``; close connections idle past ``conn_max_idle_time``; ping
    one that sat idle before handing it out; call ``listeners`` after each checkout and return;
    take a connection back from ``lane`` for a checkout that finds none idle."""
    max_idle = settings.conn_max_idle_time.total_seconds()
    max_lifetime = settings.conn_max_lifetime.total_seconds()
    time_waits(pool, settings, counters, listeners, lane)

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
        driver = getattr(dbapi_conn, "driver_connection", None)
        if driver is not None and driver.is_closed():
            # The server ended it while it sat in the pool (asyncpg saw the socket close).
            raise DisconnectionError("connection closed by the server")
        if returned_at is not None and time.monotonic() - returned_at > PING_AFTER_IDLE_S:
            # A connection in steady use is alive; one that sat idle may have been cut
            # (server restart, network): ping it, and let the pool replace it if dead.
            try:
                dbapi_conn.ping()
            except Exception as exc:
                raise DisconnectionError("connection failed its liveness ping") from exc

    @event.listens_for(pool, "checkin")
    def _checkin(dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
        # Idle since its last read when the direct reads' lane gives it back.
        record.info["checked_in_at"] = record.info.pop(IDLE_SINCE, None) or time.monotonic()

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
    lane: ConnectionLane,
) -> None:
    """Count checkouts that had to wait; call ``listeners`` after each checkout and return.
    A checkout that finds no idle connection first takes one back from ``lane`` (the direct
    reads' connections between two reads are idle ones to everyone else).

    The pool has no event before a checkout, so its checkouts and returns are intercepted
    on this instance (``gql_api.db.sqlalchemy_internals``; ``Database.dispose()`` makes a new
    pool and intercepts it again). Its state is read through its public counters.
    """
    _pool_size, max_overflow = pool_sizes(settings)

    def timed_checkout(take: Callable[[], Any]) -> Any:
        if pool.checkedin() == 0:
            lane.spare_one()  # into the pool's queue, for this checkout
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
        give_back()
        for listener in listeners:
            listener()

    intercept_checkouts(pool, timed_checkout)
    intercept_returns(pool, counted_return)
