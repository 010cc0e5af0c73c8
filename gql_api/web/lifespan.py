"""What runs beside the requests for the app's lifetime: the database (when the app owns it),
periodic cleanup, replica checks, the realtime listener, tracing's flush at exit."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI

from gql_api import __version__
from gql_api.auth.session_cache import SessionCache
from gql_api.config import Settings
from gql_api.db import Database
from gql_api.db.pool import IDLE_EXCESS_GRACE_S
from gql_api.observability import metrics, tracing
from gql_api.ops.maintenance import run_periodic_cleanup
from gql_api.realtime import Channel, Hub, HubChannel, Listener

log = logging.getLogger("gql_api.web.app")

# Objects the cyclic collector's youngest generation gathers before it scans them. An answered
# request leaves no reference cycle (errors leave without their tracebacks: masking.py, and
# tests/test_reliability_cycles.py), so a scan finds only the objects of requests in flight:
# it frees nothing and costs more the more requests are in flight. At Python's default (700),
# and still at 2,000, 32 concurrent pages of users crossed the threshold all the time: about
# 7-8% of the worker's CPU went to scans that found nothing (bench/RESULTS.md). At 20,000
# such a load did not scan once in 5-second runs; what cycles remain (graphql-core's
# validation of a new document leaves its rule visitors in one) are freed a few thousand
# objects later.
YOUNG_GENERATION = 20_000


def tune_collector() -> None:
    """Once everything lasting is loaded: keep it out of the collector's scans and scan the
    young generation less often."""
    # Modules, the schema and the plans' machinery live as long as the process: frozen, the
    # collector never walks them again (measured +5% on a users page).
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION, older, oldest)


def app_lifespan(
    settings: Settings,
    state: dict[str, Any],
    *,
    traced: tracing.Tracing | None,
    hub: Hub | None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The lifespan: ``state["db"]`` is opened here unless the caller passed one (then the
    caller owns it)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = state["db"] is None
        if owned:
            state["db"] = Database.from_settings(settings)
        db: Database = state["db"]
        log.info("gql_api %s serving on %s", __version__, db.describe())
        metrics.instrument_database(db)
        if traced is not None:
            tracing.instrument_engine(traced, db.engine)
        tune_collector()
        tasks = [asyncio.create_task(_close_idle_excess(db))]
        if settings.database.cleanup_interval.total_seconds() > 0:
            tasks.append(asyncio.create_task(run_periodic_cleanup(db, settings)))
        if db.replicas:  # replica lag and reachability (gql_api.db.replicas)
            tasks.append(asyncio.create_task(db.watch_replicas()))
        # The one LISTEN connection of this process (gql_api.realtime.listener): realtime
        # events, and the auth changes the session cache forgets.
        channels: list[Channel] = [] if hub is None else [HubChannel(hub)]
        cache: SessionCache | None = state.get("sessions")
        if cache is not None:
            channels.append(cache)
            db.commit_listeners.append(cache.forget)
        listener = None
        if channels:
            listener = Listener(settings.realtime.listen_url or db.url, channels, settings.realtime)
            listener.start()
        try:
            yield
        finally:
            if listener is not None:
                await listener.stop()
            if cache is not None:
                db.commit_listeners.remove(cache.forget)
            for task in reversed(tasks):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            metrics.worker_exiting()
            if traced is not None:
                traced.shutdown()  # exports the spans still buffered
            if owned:
                await db.dispose()

    return lifespan


async def _close_idle_excess(db: Database) -> None:
    """Idle connections beyond max_idle_conns are closed here, not on return (see
    ``gql_api.db.pool``), until cancelled."""
    while True:
        await asyncio.sleep(IDLE_EXCESS_GRACE_S / 2)
        try:
            await db.close_idle_excess()
        except Exception:  # a failure here must not stop the closing for good
            log.exception("closing idle connections failed")
