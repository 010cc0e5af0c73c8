"""Where the database is: the configured URL or an embedded server, and the URL's spellings
for asyncpg and for libpq tools."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from gql_api.config import DatabaseSettings
from gql_api.db.embedded import EmbeddedServer, start_embedded


def resolve_url(settings: DatabaseSettings) -> tuple[str, EmbeddedServer | None]:
    """The server's ``postgresql://`` URL, starting the embedded server when none is configured."""
    url = settings.server_url()
    if url is not None:
        return url, None
    server = start_embedded(settings.data_dir, settings.database)
    return server.url(settings.database), server


def asyncpg_url(url: str) -> tuple[str, dict[str, Any]]:
    """A SQLAlchemy asyncpg URL and the connect arguments its query string stood for.

    libpq's ``sslmode`` becomes asyncpg's ``ssl`` argument; ``host`` (a unix socket directory)
    and ``port`` stay in the query, where the asyncpg dialect reads them.
    """
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    connect_args: dict[str, Any] = {}
    sslmode = query.pop("sslmode", None)
    if sslmode and sslmode != "disable":
        connect_args["ssl"] = sslmode
    scheme = "postgresql+asyncpg"
    return parts._replace(scheme=scheme, query=urlencode(query)).geturl(), connect_args


def unique_statement_name() -> str:
    return f"__asyncpg_{uuid.uuid4().hex}__"


def libpq_url(url: str) -> str:
    """The URL as libpq tools (psql, pg_dump) take it."""
    parts = urlsplit(url)
    return parts._replace(scheme="postgresql").geturl()
