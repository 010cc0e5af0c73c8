"""The one LISTEN connection of a server process.

It is a plain asyncpg connection, outside the pool (a pooled connection is shared, and PgBouncer
in transaction mode cannot keep a LISTEN: ``realtime.listen_url`` names the server itself).
It listens on the channels of its :class:`Channel` objects: the realtime events, for the hub
(:class:`HubChannel`), and the auth changes, for the session cache
(``gql_api.auth.session_cache``). When the connection is lost (the server restarted,
``pg_terminate_backend``, a network cut noticed by the periodic probe) every channel hears
``lost``; it reconnects with doubling delays up to ``realtime.reconnect_max_delay``, listens
again and every channel hears ``listening`` (the hub tells every subscription ``resync``: events
committed during the gap were not delivered).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import asyncpg

from gql_api.db.urls import libpq_url
from gql_api.repositories import notifications

from .events import CHANNEL, Event
from .hub import Hub

if TYPE_CHECKING:
    from gql_api.config import RealtimeSettings

log = logging.getLogger(__name__)

APPLICATION_NAME = "gql_api realtime listener"
FIRST_DELAY_S = 0.05
PROBE_TIMEOUT_S = 5.0


class Channel(Protocol):
    """What one channel's notifications go to."""

    name: str

    def notified(self, payload: str) -> None: ...

    def listening(self) -> None:
        """LISTEN is in place: every notification from now on arrives."""

    def lost(self) -> None:
        """The connection is gone: notifications may be missed until ``listening`` again."""


class HubChannel:
    """The realtime events, for this process's subscriptions."""

    name = CHANNEL

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._listened = False

    def notified(self, payload: str) -> None:
        event = Event.from_payload(payload)
        if event is None:
            log.warning("realtime: ignored a notification this version does not understand")
            return
        self.hub.dispatch(event)

    def listening(self) -> None:
        if self._listened:
            log.warning("realtime: listening again after a gap; clients told to resync")
            self.hub.resync()
        self._listened = True

    def lost(self) -> None:
        pass


class Listener:
    def __init__(self, url: str, channels: Sequence[Channel], settings: RealtimeSettings) -> None:
        self.url = libpq_url(url)
        self.channels = {channel.name: channel for channel in channels}
        self.settings = settings
        self.connected = asyncio.Event()
        self.connects = 0  # successful connections so far (a test reads the logs, not this)
        self._task: asyncio.Task[None] | None = None
        self._lost: asyncio.Event | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="realtime-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._lost_all()

    def _notified(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        self.channels[channel].notified(payload)

    def _lost_all(self) -> None:
        for channel in self.channels.values():
            channel.lost()

    def _terminated(self, connection: Any) -> None:
        self._lost_all()  # at once: the session cache must not wait for the loop below
        if self._lost is not None:
            self._lost.set()

    async def _run(self) -> None:
        delay = FIRST_DELAY_S
        max_delay = max(self.settings.reconnect_max_delay.total_seconds(), FIRST_DELAY_S)
        probe_every = max(min(self.settings.ping_interval.total_seconds(), 30.0), 0.5)
        while True:
            connection = None
            try:
                connection = await asyncpg.connect(
                    self.url, server_settings={"application_name": APPLICATION_NAME}
                )
                self._lost = asyncio.Event()
                connection.add_termination_listener(self._terminated)
                for name in self.channels:
                    await connection.add_listener(name, self._notified)
                self.connects += 1
                for channel in self.channels.values():
                    channel.listening()
                self.connected.set()
                delay = FIRST_DELAY_S
                while not self._lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(probe_every):
                            await self._lost.wait()
                    if not self._lost.is_set():
                        await notifications.probe_listener(_Probe(connection))
                raise ConnectionError("the LISTEN connection was closed")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # lost or refused: retry after a delay
                self.connected.clear()
                self._lost_all()
                log.warning(
                    "realtime: LISTEN connection unavailable (%s); retrying in %.2fs",
                    exc.__class__.__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, max_delay)
            finally:
                if connection is not None and not connection.is_closed():
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(PROBE_TIMEOUT_S):
                            await connection.close()


class _Probe:
    """The LISTEN connection as a ``RowSource`` for the repository's probe, with a deadline (a
    silent network would otherwise hold the probe for ever)."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    async def fetch(self, statement: Any, params: dict[str, Any] | None = None) -> list[Any]:
        return list(await self.connection.fetch(statement, timeout=PROBE_TIMEOUT_S))
