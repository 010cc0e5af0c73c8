"""Realtime events: published with PostgreSQL NOTIFY in the transaction of the change
(:mod:`.events`), received by one LISTEN connection per process (:mod:`.listener`) and fanned out
to that process's WebSocket subscriptions (:mod:`.hub`)."""

from .events import Event, publish
from .hub import Hub
from .listener import Channel, HubChannel, Listener

__all__ = ["Channel", "Event", "Hub", "HubChannel", "Listener", "publish"]
