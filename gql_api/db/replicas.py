"""Streaming replicas for the reads that tolerate a little staleness.

:class:`ReplicaSet` holds one engine per configured replica (``database.read_replica_urls``),
hands them out in turn and keeps each one's state: a replica is in rotation once a check has
found it answering and at most ``replica_max_lag`` behind; it leaves the rotation (a log line
and ``gql_api_db_replica_removals_total``) when it falls further behind or stops answering, and
comes back when a later check finds it caught up.

Lag is measured in WAL, not in clocks: every check samples the primary's position
(``pg_current_wal_lsn()``), and a replica's lag is the age of the oldest sample it has not
replayed yet (``pg_last_wal_replay_lsn()``). An idle primary therefore never makes a replica
look late, and a paused replay shows up as lag as soon as the primary writes anything. The
resolution is ``replica_check_interval``.

Which reads may come here, and the read-your-writes fence that keeps a user's reads after their
own write on the primary (or on a replica that has replayed it), are decided in
:mod:`gql_api.db.database` (``Database.stale_reads()`` / ``stale_session()``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
from prometheus_client import Counter, Gauge
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gql_api.config import DatabaseSettings, redact_url
from gql_api.db.connection_budget import BudgetExhausted
from gql_api.db.connection_lane import ConnectionLane, follow
from gql_api.db.direct_reads import Reader
from gql_api.db.failures import database_failure
from gql_api.db.pool import PoolCounters, lane_keep_s, watch_pool
from gql_api.errors import ServiceUnavailable
from gql_api.repositories.replication import primary_position, replay_position
from gql_api.repositories.row_source import RowSource

if TYPE_CHECKING:
    from gql_api.db.database import Database

log = logging.getLogger(__name__)

REMOVALS = Counter(
    "gql_api_db_replica_removals",
    "Replicas taken out of the read rotation, by reason (lag, unreachable, error).",
    ["replica", "reason"],
)
FALLBACKS = Counter(
    "gql_api_db_replica_fallback_reads",
    "Staleness-tolerant reads a replica failed, served by the primary instead.",
    ["replica"],
)
LAG = Gauge(
    "gql_api_db_replica_lag_seconds",
    "Replay lag of each replica at its last check (WAL the primary had that long ago).",
    ["replica"],
    multiprocess_mode="max",
)

_RECOVERY_CONFLICT = "40001"  # a statement cancelled on a standby because of replay


@dataclass
class ReplicaStatus:
    in_rotation: bool = False  # until a first check has found it fit
    lag_s: float | None = None
    replayed_lsn: int | None = None
    error: str | None = None
    removals: int = 0


class Replica:
    """One replica's engine, its direct reader, its sessions, pool counters and state."""

    def __init__(self, name: str, url: str, engine: AsyncEngine, settings: DatabaseSettings):
        self.name = name
        self.url = url
        self.engine = engine
        direct = not settings.disable_prepared_statements
        autocommit = engine.execution_options(isolation_level="AUTOCOMMIT") if direct else engine
        self.lane = ConnectionLane(lane_keep_s(settings))  # gql_api.db.connection_lane
        follow(engine, self.lane)
        self.reader = Reader(autocommit, direct=direct, lane=self.lane)
        self.sessionmaker = async_sessionmaker(
            engine, class_=AsyncSession, expire_on_commit=False, autoflush=False
        )
        self.counters = PoolCounters()
        watch_pool(engine.sync_engine.pool, settings, self.counters, [], self.lane)
        self.status = ReplicaStatus()

    def describe(self) -> dict[str, Any]:
        """Its state as health and readiness report it (no address: health is public)."""
        lag = self.status.lag_s
        return {
            "name": self.name,
            "inRotation": self.status.in_rotation,
            "lagSeconds": None if lag is None or math.isinf(lag) else round(lag, 3),
            "error": self.status.error,
        }


def replica_failed(error: BaseException) -> bool:
    """Whether a read's failure is the replica's (down, unreachable, busy, or a statement
    cancelled by replay), so that the read may go to the primary instead."""
    if isinstance(error, BudgetExhausted):
        return False  # the request's own limit, wherever it reads
    link: BaseException | None = error
    for _ in range(8):
        if link is None:
            break
        if isinstance(link, asyncpg.PostgresError) and link.sqlstate == _RECOVERY_CONFLICT:
            return True
        orig = getattr(link, "orig", None)
        link = orig if isinstance(orig, BaseException) else link.__cause__
    return isinstance(database_failure(error), ServiceUnavailable)


class ReplicaSet:
    """The replicas of one process, their rotation and their checks."""

    def __init__(self, replicas: list[Replica], settings: DatabaseSettings) -> None:
        self.replicas = replicas
        self.max_lag_s = settings.replica_max_lag.total_seconds()
        self.interval_s = max(settings.replica_check_interval.total_seconds(), 0.05)
        # A check that takes longer than this counts as not answering.
        self.check_timeout_s = max(settings.connect_timeout.total_seconds(), self.interval_s)
        self._turn = 0
        # (monotonic time, primary position), oldest first: enough to span the lag limit.
        span = math.ceil(self.max_lag_s / self.interval_s) + 4
        self._samples: deque[tuple[float, int]] = deque(maxlen=span)

    def __bool__(self) -> bool:
        return bool(self.replicas)

    def pick(self, *, min_lsn: int | None = None) -> Replica | None:
        """The next replica in rotation (that has replayed ``min_lsn``), or None."""
        count = len(self.replicas)
        for step in range(count):
            replica = self.replicas[(self._turn + step) % count]
            status = replica.status
            if not status.in_rotation:
                continue
            if min_lsn is not None and (status.replayed_lsn or 0) < min_lsn:
                continue
            self._turn = (self._turn + step + 1) % count
            return replica
        return None

    def take_out(self, replica: Replica, *, reason: str, detail: str) -> None:
        status = replica.status
        status.error = detail
        if status.in_rotation:
            status.in_rotation = False
            status.removals += 1
            REMOVALS.labels(replica.name, reason).inc()
            log.warning(
                "read replica %s (%s) out of rotation (%s): %s; its reads go to the primary",
                replica.name,
                redact_url(replica.url),
                reason,
                detail,
            )

    def failed_read(self, replica: Replica, error: BaseException) -> None:
        FALLBACKS.labels(replica.name).inc()
        self.take_out(replica, reason="error", detail=error.__class__.__name__)

    def _put_back(self, replica: Replica) -> None:
        status = replica.status
        status.error = None
        if not status.in_rotation:
            status.in_rotation = True
            log.info("read replica %s (%s) in rotation", replica.name, redact_url(replica.url))

    def lag_of(self, replayed: int | None, now: float) -> float:
        """How long ago the primary had WAL this replica has not replayed (0: none)."""
        if replayed is None:
            return math.inf
        for sampled_at, position in self._samples:
            if position > replayed:
                return now - sampled_at
        return 0.0

    async def check(self, primary: RowSource) -> None:
        """Sample the primary's position, then every replica's replay position."""
        now = time.monotonic()
        try:
            async with asyncio.timeout(self.check_timeout_s):
                position = await primary_position(primary)
        except Exception as exc:  # without the primary there is nothing to measure against
            log.debug("replica check: primary position unavailable: %r", exc)
            return
        self._samples.append((now, position))
        await asyncio.gather(*(self._check_one(replica, now) for replica in self.replicas))

    async def _check_one(self, replica: Replica, now: float) -> None:
        try:
            async with asyncio.timeout(self.check_timeout_s):
                replay = await replay_position(replica.reader)
        except Exception as exc:  # not answering, whatever the cause
            replica.status.lag_s = None
            self.take_out(replica, reason="unreachable", detail=exc.__class__.__name__)
            return
        lag = self.lag_of(replay.lsn, now)
        replica.status.replayed_lsn = replay.lsn
        replica.status.lag_s = lag
        LAG.labels(replica.name).set(lag if math.isfinite(lag) else -1)
        if lag > self.max_lag_s:
            self.take_out(
                replica, reason="lag", detail=f"replay lag {lag:.1f}s over {self.max_lag_s:g}s"
            )
        else:
            self._put_back(replica)

    async def watch(self, primary: RowSource) -> None:
        """Check every ``replica_check_interval`` until cancelled."""
        while True:
            try:
                await self.check(primary)
            except Exception:  # a bug here must not stop the checks for good
                log.exception("replica check failed")
            await asyncio.sleep(self.interval_s)

    def describe(self) -> list[dict[str, Any]]:
        return [replica.describe() for replica in self.replicas]

    async def dispose(self) -> None:
        for replica in self.replicas:
            await replica.engine.dispose()


@dataclass
class RequestReads:
    """What one request's reads depend on: who is calling, whether it wrote, their fence."""

    actor_id: uuid.UUID | None = None
    wrote: bool = False
    fence_known: bool = False
    fence: int | None = None


class StaleReads:
    """A :class:`RowSource` for reads that tolerate a little staleness: on a replica when one
    may serve them, else on the primary; a replica that fails the read is taken out of rotation
    and the read goes to the primary, so a replica going down fails no request."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def fetch(self, statement: Any, params: dict[str, Any] | None = None) -> list[Any]:
        replica = await self.db.stale_replica()
        if replica is None:
            return await self.db.fetch(statement, params)
        try:
            async with self.db.slot():
                rows: list[Any] = await replica.reader.fetch(statement, params)
                return rows
        except Exception as exc:
            if not replica_failed(exc):
                raise
            self.db.replicas.failed_read(replica, exc)
        return await self.db.fetch(statement, params)
