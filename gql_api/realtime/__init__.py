"""Realtime events: published with PostgreSQL NOTIFY in the transaction of the change
(:mod:`.events`), received by one LISTEN connection per process (:mod:`.listener`) and fanned out
to that process's WebSocket subscriptions (:mod:`.hub`)."""

from .events import Event, publish
from .hub import Hub
from .listener import Listener

__all__ = ["Event", "Hub", "Listener", "publish"]
