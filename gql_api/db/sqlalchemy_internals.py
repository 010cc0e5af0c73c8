"""The private SQLAlchemy APIs the service relies on, all of them, in one place.

Each exists because no public API does the job:

- :func:`cache_key`: the direct reads (``gql_api.db.direct_reads``) compile a statement once per
  shape and bind each request's values into it, as SQLAlchemy's own compiled cache does; the
  cache key is what separates a statement's shape from its values (``ClauseElement
  ._generate_cache_key``).
- :func:`intercept_checkouts` / :func:`intercept_returns`: the pool has events after a checkout
  and before a return, none around them, so the time a checkout waits for a connection and the
  gauges after a return need the pool's ``_do_get`` / ``_do_return_conn`` (wrapped on one pool
  instance, never on the class).

``tests/test_db_sqlalchemy_internals.py`` fails, naming the API, when an upgrade changes one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.pool import Pool
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.cache_key import CacheKey

T = TypeVar("T")


def cache_key(statement: ClauseElement) -> CacheKey:
    """The statement's shape (``.key``, hashable) and its bound values (``.bindparams``)."""
    key = statement._generate_cache_key()
    if key is None:
        raise ValueError("the statement is not cacheable (a construct without a cache key)")
    return key


def intercept_checkouts(pool: Pool, wrapper: Callable[[Callable[[], Any]], Any]) -> None:
    """Every checkout of ``pool`` runs ``wrapper(take)``; ``take()`` takes a connection record
    from the pool, waiting up to ``pool_timeout`` when every connection is out."""
    take: Callable[[], Any] = pool._do_get
    pool._do_get = lambda: wrapper(take)  # type: ignore[method-assign]


def intercept_returns(pool: Pool, wrapper: Callable[[Callable[[], None]], None]) -> None:
    """Every return to ``pool`` runs ``wrapper(give_back)``; ``give_back()`` puts the record
    back, or closes it when the pool already holds ``pool_size`` idle connections."""
    give_back: Callable[[Any], None] = pool._do_return_conn
    pool._do_return_conn = lambda record: wrapper(  # type: ignore[method-assign]
        lambda: give_back(record)
    )
