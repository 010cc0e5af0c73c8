"""The database's figures on ``/metrics`` (``metrics``): the pool's connections by state, its
waits and closes, and the active sessions.

In one process the pool figures are read from the pool at scrape time (:class:`Snapshot`). With
several workers a scrape reaches only one of them, so each worker also writes its pool figures into
``livesum`` gauges after every checkout and return (:func:`publish`: a few float writes) and the
scrape sums the live workers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import Gauge
from prometheus_client.core import GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from gql_api.db import Database

# Written only with several workers (see the module docstring); never in the default registry.
_POOL_CONNECTIONS = Gauge(
    "gql_api_db_pool_connections",
    "Pool connections by state.",
    ["state"],
    registry=None,
    multiprocess_mode="livesum",
)
_POOL_FIGURES = {
    name: Gauge(name, doc, registry=None, multiprocess_mode="livesum")
    for name, doc in (
        ("gql_api_db_pool_max_open_connections", "Configured max_open_conns."),
        ("gql_api_db_pool_wait_count", "Checkouts that waited for a free connection."),
        ("gql_api_db_pool_wait_seconds", "Total time spent waiting for a free connection."),
    )
}
_POOL_CLOSED = Gauge(
    "gql_api_db_pool_closed_connections",
    "Connections the pool closed, by reason (max_idle, max_idle_time, max_lifetime).",
    ["reason"],
    registry=None,
    multiprocess_mode="livesum",
)


def _pool_values(db: Database) -> dict[str, Any]:
    status, counters = db.pool_status(), db.counters
    return {
        "connections": {"open": status["open"], "in_use": status["in_use"], "idle": status["idle"]},
        "gql_api_db_pool_max_open_connections": db.settings.max_open_conns,
        "gql_api_db_pool_wait_count": counters.wait_count,
        "gql_api_db_pool_wait_seconds": counters.wait_duration_s,
        "closed": {
            "max_idle": counters.closed_max_idle,
            "max_idle_time": counters.closed_max_idle_time,
            "max_lifetime": counters.closed_max_lifetime,
        },
    }


def publish(db: Database) -> None:
    """Write this worker's pool figures into the multi-process gauges."""
    values = _pool_values(db)
    for state, value in values.pop("connections").items():
        _POOL_CONNECTIONS.labels(state).set(value)
    for reason, value in values.pop("closed").items():
        _POOL_CLOSED.labels(reason).set(value)
    for name, value in values.items():
        _POOL_FIGURES[name].set(value)


class Snapshot:
    """Collector for one scrape: this process's pool (single process) and the session count."""

    def __init__(self, db: Database, active_sessions: int | None, with_pool: bool) -> None:
        self.db, self.active_sessions, self.with_pool = db, active_sessions, with_pool

    def collect(self) -> Iterable[Metric]:
        if self.with_pool:
            values = _pool_values(self.db)
            connections = GaugeMetricFamily(
                "gql_api_db_pool_connections", "Pool connections by state.", labels=["state"]
            )
            for state, value in values.pop("connections").items():
                connections.add_metric([state], value)
            yield connections
            closed = GaugeMetricFamily(
                "gql_api_db_pool_closed_connections",
                "Connections the pool closed, by reason.",
                labels=["reason"],
            )
            for reason, value in values.pop("closed").items():
                closed.add_metric([reason], value)
            yield closed
            for name, value in values.items():
                yield GaugeMetricFamily(name, _POOL_FIGURES[name]._documentation, value=value)
        if self.active_sessions is not None:
            yield GaugeMetricFamily(
                "gql_api_active_sessions",
                "Sessions neither revoked nor expired (all replicas).",
                value=self.active_sessions,
            )
