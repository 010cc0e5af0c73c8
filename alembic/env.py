"""Alembic environment: async, on the database gql_api's settings name (embedded by default).

A caller may hand over a live connection in ``config.attributes["connection"]`` (the CLI and the
tests do); otherwise the URL comes from ``-x url=...`` or from the settings.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from alembic import context
from gql_api.models import metadata

config = context.config
target_metadata = metadata


def _include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    # alembic_version is alembic's own; everything else must match the models.
    return not (type_ == "table" and name == "alembic_version")


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=False,
        include_object=_include_object,
        transaction_per_migration=True,
    )


def _do_run(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    from gql_api.config import load_settings
    from gql_api.db import asyncpg_url, resolve_url

    override = context.get_x_argument(as_dictionary=True).get("url")
    if override:
        return asyncpg_url(override)[0]
    url, _server = resolve_url(load_settings().database)
    return asyncpg_url(url)[0]


async def _run_async() -> None:
    engine = create_async_engine(_url())
    async with engine.connect() as connection:
        await connection.run_sync(_do_run)
        await connection.commit()
    await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        include_object=_include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _do_run(connection)
        return
    asyncio.run(_run_async())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
