"""Connections handed from one direct read to the next without going back to the pool.

A direct read (``gql_api.db.direct_reads``) is one statement outside any transaction, so the
connection it has just used is as good for the next read as any the pool holds. Going through
the pool in between (the greenlet switch, the fairy and its weakref, the pool's events, our
counters and listeners, the reset on return) cost 15 µs of CPU against the statement's own 23 on
asyncpg, and a page of users sends three: keeping the connection for the next read made a Q2
1.16x cheaper in process, a Relay page 1.14x (bench/RESULTS.md, "Connections handed on").

The pool's rules still hold, at most ``keep_s`` late. A connection stays out of the pool at most
``keep_s`` after its checkout (:func:`gql_api.db.pool.lane_keep_s`: the pool's ping-after-idle
delay, or ``conn_max_idle_time`` when shorter); then it goes back, taken back by the next read
or by a timer, and its next checkout runs the pool's checks again (lifetime, idle time, the
liveness ping), its idle time counted from its last read. One that broke mid-statement never
comes here, and one the server has closed meanwhile is not handed out. To everyone else the
lane's connections are the pool's idle ones: the pool's status counts them as idle, and a
checkout that finds no idle connection in the pool takes one back from the lane first
(``gql_api.db.pool.time_waits``), so nothing ever waits for a connection that sits here.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from gql_api.db.sqlalchemy_internals import pool_of, run_sync

# A checked-out connection (SQLAlchemy's pool fairy) and when it left the pool (monotonic).
Kept = tuple[Any, float]

# Set on a connection's info when the lane gives it back: when its last read ended, so that the
# pool counts its idle time (ping, conn_max_idle_time, idle excess) from there, not from its
# return (``gql_api.db.pool``).
IDLE_SINCE = "idle_since"


class ConnectionLane:
    def __init__(self, keep_s: float) -> None:
        self.keep_s = keep_s
        self._kept: list[tuple[Any, float, float]] = []  # Kept and when last used; newest last
        self._timer: asyncio.TimerHandle | None = None
        self._returning: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        """How many connections the lane holds (idle ones, to the pool's status)."""
        return len(self._kept)

    def take(self) -> Kept | None:
        """The most recently kept connection that is still in time and open, or None; those out
        of time or closed by the server go back to the pool on the way."""
        kept = self._kept
        now = time.monotonic()
        while kept:
            pooled, since, used = kept.pop()
            if now - since < self.keep_s and not pooled.driver_connection.is_closed():
                return pooled, since
            self._give_back(pooled, used)
        return None

    def keep(self, pooled: Any, since: float) -> None:
        """Hold a connection a read has finished with, checked out of the pool at ``since``."""
        self._kept.append((pooled, since, time.monotonic()))
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.keep_s, self._expire)

    def spare_one(self) -> None:
        """Back to the pool with the connection kept longest (for a checkout that found none
        idle there)."""
        if self._kept:
            pooled, _, used = self._kept.pop(0)
            self._give_back(pooled, used)

    def close_all(self) -> None:
        """Close every connection kept (the engine disposed of its pool, which closed those it
        held): where SQLAlchemy's ``await_`` works, as the engine's disposal runs."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        kept, self._kept = self._kept, []
        for pooled, _, _ in kept:
            _close(pooled, reusable=False)

    def _expire(self) -> None:
        self._timer = None
        now = time.monotonic()
        due = [entry for entry in self._kept if now - entry[1] >= self.keep_s]
        self._kept = [entry for entry in self._kept if now - entry[1] < self.keep_s]
        for pooled, _, used in due:
            self._give_back(pooled, used)
        if self._kept:
            oldest = min(since for _, since, _ in self._kept)
            delay = max(oldest + self.keep_s - now, 0.0)
            self._timer = asyncio.get_running_loop().call_later(delay, self._expire)

    def _give_back(self, pooled: Any, used: float) -> None:
        pooled.info[IDLE_SINCE] = used
        closing = return_to_pool(pooled, reusable=True)
        if closing is not None:  # closing awaits the driver: a task of its own
            task = asyncio.get_running_loop().create_task(closing)
            self._returning.add(task)
            task.add_done_callback(self._returning.discard)


def follow(engine: AsyncEngine, lane: ConnectionLane) -> None:
    """Close ``lane``'s connections whenever ``engine`` disposes of its pool (``dispose()``,
    ours or anyone's): kept past that, they would go back to a pool nobody uses."""
    event.listen(engine.sync_engine, "engine_disposed", lambda _engine: lane.close_all())


def return_to_pool(pooled: Any, *, reusable: bool) -> Any:
    """Give a connection back to its pool: at once (None) when it goes into the pool's queue,
    else the coroutine that closes it (invalidated, or the pool cannot keep it), to await."""
    pool: Any = pool_of(pooled)  # a QueuePool: its size and idle count
    if reusable and pool.checkedin() < pool.size():
        pooled.close()  # into the pool's queue: nothing awaits the driver
        return None
    return run_sync(functools.partial(_close, pooled, reusable=reusable))


def _close(pooled: Any, *, reusable: bool) -> None:
    try:
        if not reusable:
            # Cancelled mid-statement or the connection broke: it cannot go back as is.
            pooled.invalidate()
    finally:
        pooled.close()  # its slot, even when closing the connection was cut short
