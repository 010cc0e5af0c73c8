"""How many pooled connections one request may hold at once.

GraphQL resolves the fields of a level concurrently, so a document with fifteen aliases of a
field that reads the database would take fifteen connections at once, and a handful of such
requests would leave every other caller waiting for the pool. Each request therefore gets a
:class:`ConnectionBudget`: every checkout made on its behalf takes a slot first.

Slots are re-entrant per task: a resolver that holds a connection (a transaction) and reads again
while holding it is already counted and never waits for itself. A wait is bounded (the pool's
own timeout), so even a shape we did not foresee (a task holding a slot while it waits for
another task's checkout) ends in an error, not a hang.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class BudgetExhausted(TimeoutError):
    """No slot of the request's budget came free in time (reported as SERVICE_UNAVAILABLE)."""


class ConnectionBudget:
    def __init__(self, slots: int, *, timeout_s: float) -> None:
        self.slots = slots
        self.timeout_s = timeout_s
        self._free = asyncio.Semaphore(slots)
        self._held: dict[asyncio.Task[object] | None, int] = {}

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the body (or share the one this task already holds)."""
        task = asyncio.current_task()
        depth = self._held.get(task, 0)
        if depth == 0:
            if not self._free.locked():
                await self._free.acquire()  # free now: no timer needed
            else:
                try:
                    await asyncio.wait_for(self._free.acquire(), self.timeout_s)
                except TimeoutError:
                    raise BudgetExhausted(
                        f"no database connection of this request came free in {self.timeout_s:g}s"
                    ) from None
        self._held[task] = depth + 1
        try:
            yield
        finally:
            if depth == 0:
                del self._held[task]
                self._free.release()
            else:
                self._held[task] = depth
