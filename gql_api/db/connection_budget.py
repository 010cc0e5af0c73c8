"""How many pooled connections one request may hold at once.

GraphQL resolves the fields of a level concurrently, so a document with fifteen aliases of a
field that reads the database would take fifteen connections at once, and a handful of such
requests would leave every other caller waiting for the pool. Each request therefore gets a
:class:`ConnectionBudget`: every checkout made on its behalf takes a slot first.

Slots are re-entrant per task: a resolver that holds a connection (a transaction) and reads again
while holding it is already counted and never waits for itself. A wait is bounded (the pool's
own timeout), so even a shape we did not foresee (a task holding a slot while it waits for
another task's checkout) ends in an error, not a hang.

Checkouts also queue for the pool in arrival order (:class:`CheckoutQueue`): SQLAlchemy's pool
hands a returned connection to whoever asks next, not to whoever has waited longest, so under
load a few requests kept losing that race while others barged ahead. At 32 concurrent pages of
users the p99 latency was four times the median (bench/RESULTS.md, tail latency); in arrival
order it is close to the median.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class BudgetExhausted(TimeoutError):
    """No slot of the request's budget came free in time (reported as SERVICE_UNAVAILABLE)."""


class PoolBusy(BudgetExhausted):
    """No pooled connection came free in time for a checkout that queued for one."""


class CheckoutQueue:
    """First come, first served for the pool's connections, one per process: a checkout
    takes a place here (``capacity`` at once, the pool's size) before it asks the pool, so the
    pool never has waiters to pass over. asyncio's semaphore wakes its waiters in order and lets
    no newcomer ahead of them."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._places: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    def places(self, loop: asyncio.AbstractEventLoop) -> asyncio.Semaphore:
        # One per event loop: a semaphore belongs to the loop that first waited on it.
        if self._places is None or self._places[0] is not loop:
            self._places = (loop, asyncio.Semaphore(self.capacity))
        return self._places[1]


async def _acquire(
    semaphore: asyncio.Semaphore, timeout_s: float, error: type[BudgetExhausted], whose: str
) -> None:
    if not semaphore.locked():
        await semaphore.acquire()  # free now: no timer needed
        return
    try:
        # asyncio.timeout, not wait_for: no task per wait (most checkouts wait under load).
        async with asyncio.timeout(timeout_s):
            await semaphore.acquire()
    except TimeoutError:
        raise error(f"no database connection{whose} came free in {timeout_s:g}s") from None


# What take() holds, for give_back(): the task, its depth before, and its place in the queue.
Held = tuple[asyncio.Task[object] | None, int, asyncio.Semaphore | None]


class ConnectionBudget:
    def __init__(self, slots: int, *, timeout_s: float, queue: CheckoutQueue | None = None) -> None:
        self.slots = slots
        self.timeout_s = timeout_s
        self._free = asyncio.Semaphore(slots)
        self._held: dict[asyncio.Task[object] | None, int] = {}
        self._queue = queue
        # The request's loop, looked up once, not per checkout (asyncio's lookup makes a
        # getpid() system call on Python 3.11).
        self._loop: asyncio.AbstractEventLoop | None = None

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the body (or share the one this task already holds)."""
        held = await self.take()
        try:
            yield
        finally:
            self.give_back(held)

    async def take(self) -> Held:
        """:meth:`slot` without a context manager (for the hot single reads): pass what it
        returns to :meth:`give_back` when done."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        depth = self._held.get(task, 0)
        place: asyncio.Semaphore | None = None
        if depth == 0:
            await _acquire(self._free, self.timeout_s, BudgetExhausted, " of this request")
            if self._queue is not None:
                place = self._queue.places(loop)
                try:
                    await _acquire(place, self.timeout_s, PoolBusy, "")
                except BaseException:
                    self._free.release()
                    raise
        self._held[task] = depth + 1
        return task, depth, place

    def give_back(self, held: Held) -> None:
        task, depth, place = held
        if depth == 0:
            del self._held[task]
            if place is not None:
                place.release()
            self._free.release()
        else:
            self._held[task] = depth
