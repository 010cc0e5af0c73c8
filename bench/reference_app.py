"""The reference: Starlette + asyncpg + orjson answering the benchmark's operations by hand.

It issues exactly the statements gql_api's resolvers and loaders issue (the same text, so
pg_stat_statements files them under the same query ids; ``bench.run`` checks that) in the same
order and with the same concurrency: the bearer check; for ``users`` the page, then the count,
the profiles and the sessions at once on three connections. It builds the same JSON by hand.
What it leaves out is GraphQL itself: no parsing, validation or generic execution, and no
per-connection ping or transaction around each statement. That makes it the practical limit for
Python on this stack, not a product: it understands only the documents in ``bench.queries``.

Run: ``BENCH_DATABASE_URL=postgresql://... BENCH_JWT_SECRET=... uvicorn bench.reference_app:app``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg
import jwt
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench import queries

# --- The statements, verbatim as SQLAlchemy renders them for gql_api (see bench/README.md) ------

AUTH_SQL = (
    "SELECT users.id, users.email, users.first_name, users.last_name, "
    "users.role, users.status, users.email_verified, users.email_verified_at, "
    "users.password_changed_at, users.last_login_at, users.login_count, users.created_at, "
    "users.updated_at, user_sessions.expires_at AS session_expires_at \n"
    "FROM users JOIN user_sessions ON user_sessions.user_id = users.id \n"
    "WHERE user_sessions.id = $1::UUID AND user_sessions.user_id = $2::UUID AND "
    "user_sessions.revoked_at IS NULL AND user_sessions.expires_at > now() AND "
    "users.status = $3::VARCHAR"
)
# The page selects the columns Q2 shows (gql_api.graphql.engine.lookahead), the id and the sort
# key among them.
_PAGE_COLUMNS = (
    "SELECT users.id, users.email, users.first_name, users.last_name, users.role, users.status, "
    "users.created_at, "
    "(SELECT CAST(coalesce(sum(user_counts.users), 0) AS BIGINT) AS coalesce_1 \n"
    "FROM user_counts) AS total_count \n"
    "FROM users \n"
)
# The limit is written in, as gql_api writes it (gql_api.repositories.keyset.seek): {limit}.
PAGE_SQL = (
    _PAGE_COLUMNS + "WHERE true ORDER BY users.created_at DESC, users.id DESC \n LIMIT {limit}"
)
PAGE_AFTER_SQL = (
    _PAGE_COLUMNS + "WHERE true AND (users.created_at, users.id) < "
    "($1::TIMESTAMP WITH TIME ZONE, $2::UUID) ORDER BY users.created_at DESC, users.id DESC \n"
    " LIMIT {limit}"
)
# totalCount reads the per (role, status) counts that triggers keep (migration 0014): with the
# page (its total_count column) when the page has a row, else on its own.
COUNT_SQL = (
    "SELECT CAST(coalesce(sum(user_counts.users), 0) AS BIGINT) AS coalesce_1 \nFROM user_counts"
)
# The relations' objects are written by PostgreSQL as JSON text, as gql_api's planned executor
# has them written for Q2's selection (gql_api.repositories.json_text), and spliced unread.
PROFILES_SQL = (
    "SELECT user_profiles.user_id, concat('{\"bio\":', CASE WHEN (user_profiles.bio IS NULL) "
    "THEN 'null' ELSE CAST(to_json(user_profiles.bio) AS TEXT) END, ',\"timezone\":', CASE WHEN"
    " (user_profiles.timezone IS NULL) THEN 'null' ELSE CAST(to_json(user_profiles.timezone) "
    "AS TEXT) END, ',\"locale\":', CASE WHEN (user_profiles.locale IS NULL) THEN 'null' ELSE "
    "CAST(to_json(user_profiles.locale) AS TEXT) END, '}') AS json \nFROM user_profiles \nWHERE"
    " user_profiles.user_id = ANY ($1::UUID[])"
)
SESSIONS_SQL = (
    "SELECT user_sessions.user_id, concat('[', string_agg(concat('{\"id\":', concat('\"', "
    "CAST(user_sessions.id AS TEXT), '\"'), ',\"userAgent\":', CASE WHEN "
    "(user_sessions.user_agent IS NULL) THEN 'null' ELSE "
    "CAST(to_json(user_sessions.user_agent) AS TEXT) END, ',\"ipAddress\":', CASE WHEN "
    "(user_sessions.ip_address IS NULL) THEN 'null' ELSE "
    "CAST(to_json(user_sessions.ip_address) AS TEXT) END, ',\"expiresAt\":', CASE WHEN "
    "(user_sessions.expires_at = 'infinity'::timestamptz) THEN '\"9999-12-31T23:59:59.999999\"'"
    " WHEN (user_sessions.expires_at = '-infinity'::timestamptz) THEN '\"0001-01-01T00:00:00\"'"
    " WHEN (user_sessions.expires_at >= '10000-01-01 00:00:00+00'::timestamptz OR "
    "user_sessions.expires_at < '0001-01-01 00:00:00+00'::timestamptz) THEN "
    "CAST(CAST(concat('year out of range: ', CAST(user_sessions.expires_at AS TEXT)) AS "
    "INTEGER) AS TEXT) ELSE concat('\"', replace(to_char(timezone('UTC', "
    "user_sessions.expires_at), 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), '.000000', ''), "
    "'+00:00\"') END, "
    "'}'), ','"
    " ORDER BY user_sessions.created_at DESC, user_sessions.id DESC), ']') AS json \nFROM "
    "user_sessions \nWHERE user_sessions.user_id = ANY ($1::UUID[]) AND "
    "user_sessions.revoked_at IS NULL AND user_sessions.expires_at > now() GROUP BY "
    "user_sessions.user_id"
)


# --- Requests ----------------------------------------------------------------------------------

NO_SESSIONS = orjson.Fragment(b"[]")
REQUIRED_CLAIMS = ["sub", "sid", "role", "type", "iat", "exp", "iss", "aud", "jti"]
USERS_PAGE = re.compile(re.escape(queries.users_page(999)).replace("999", r"(\d+)"))
ORDER_TAG = "users:created_at:desc"
DEFAULT_PAGE = 20
MAX_PAGE = 100


class Refused(Exception):
    """An error the reference answers with, as a GraphQL error with a code."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def _error(path: str, exc: Refused) -> bytes:
    return orjson.dumps(
        {
            "data": None,
            "errors": [{"message": str(exc), "path": [path], "extensions": {"code": exc.code}}],
        }
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class Reference:
    def __init__(self, pool: asyncpg.Pool, secret: str) -> None:
        self.pool = pool
        self.secret = secret

    async def viewer(self, request: Request) -> asyncpg.Record:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Refused("Authentication required", "UNAUTHENTICATED")
        try:
            claims = jwt.decode(
                token.strip(),
                self.secret,
                algorithms=["HS256"],
                audience="gql_api",
                issuer="gql_api",
                options={"require": REQUIRED_CLAIMS},
            )
            if claims["type"] != "access":
                raise ValueError("not an access token")
            user_id, session_id = uuid.UUID(claims["sub"]), uuid.UUID(claims["sid"])
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            raise Refused("Invalid or expired access token", "UNAUTHENTICATED") from None
        row = await self.pool.fetchrow(AUTH_SQL, session_id, user_id, "active")
        if row is None:
            raise Refused("Session revoked or expired", "UNAUTHENTICATED")
        return row

    async def me(self, request: Request) -> bytes:
        try:
            user = await self.viewer(request)
        except Refused as exc:
            return _error("me", exc)
        node = {
            "id": str(user["id"]),
            "email": user["email"],
            "firstName": user["first_name"],
            "lastName": user["last_name"],
            "role": user["role"].upper(),
        }
        return orjson.dumps({"data": {"me": node}})

    async def users(self, request: Request, first: int, after: str | None) -> bytes:
        try:
            viewer = await self.viewer(request)
            if viewer["role"] != "admin":
                raise Refused("Administrator role required", "FORBIDDEN")
            if not 1 <= first <= MAX_PAGE:
                raise Refused(f"first must be between 1 and {MAX_PAGE}", "BAD_USER_INPUT")
            if after is None:
                rows = await self.pool.fetch(PAGE_SQL.format(limit=first + 1))
            else:
                key, row_id = _decode_cursor(after)
                rows = await self.pool.fetch(PAGE_AFTER_SQL.format(limit=first + 1), key, row_id)
        except Refused as exc:
            return _error("users", exc)
        rows = rows[:first]
        ids = [row["id"] for row in rows]
        if ids:
            total = rows[0]["total_count"]
            profiles, sessions = await asyncio.gather(
                self.pool.fetch(PROFILES_SQL, ids), self.pool.fetch(SESSIONS_SQL, ids)
            )
        else:
            total, profiles, sessions = await self.pool.fetchval(COUNT_SQL), [], []
        return orjson.dumps(
            {"data": {"users": {"totalCount": total, "edges": _edges(rows, profiles, sessions)}}}
        )


def _edges(
    rows: Sequence[asyncpg.Record],
    profiles: Sequence[asyncpg.Record],
    sessions: Sequence[asyncpg.Record],
) -> list[dict[str, Any]]:
    profile_by_user = {p["user_id"]: orjson.Fragment(p["json"]) for p in profiles}
    sessions_by_user = {s["user_id"]: orjson.Fragment(s["json"]) for s in sessions}
    edges = []
    for row in rows:
        edges.append(
            {
                "node": {
                    "id": str(row["id"]),
                    "email": row["email"],
                    "firstName": row["first_name"],
                    "lastName": row["last_name"],
                    "role": row["role"].upper(),
                    "status": row["status"].upper(),
                    "createdAt": _iso(row["created_at"]),
                    "profile": profile_by_user.get(row["id"]),
                    "sessions": sessions_by_user.get(row["id"], NO_SESSIONS),
                }
            }
        )
    return edges


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode("ascii"))
        tag, key, row_id = orjson.loads(raw)
        if tag != ORDER_TAG:
            raise ValueError("another ordering")
        moment = datetime.fromisoformat(key)
        if moment.tzinfo is None:
            raise ValueError("naive datetime")
        return moment, uuid.UUID(row_id)
    except (ValueError, TypeError, UnicodeError, AttributeError):
        raise Refused("Malformed cursor", "BAD_USER_INPUT") from None


async def _no_reset(connection: asyncpg.Connection) -> None:
    return None


def create_app(database_url: str | None = None, secret: str | None = None) -> Starlette:
    url = database_url or os.environ["BENCH_DATABASE_URL"]
    jwt_secret = secret or os.environ["BENCH_JWT_SECRET"]
    state: dict[str, Reference] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The server's pool: max_idle_conns 10 kept open, max_open_conns 25. No reset query on
        # release (asyncpg's default is a round trip): nothing here changes session state.
        pool = await asyncpg.create_pool(url, min_size=10, max_size=25, reset=_no_reset)
        state["ref"] = Reference(pool, jwt_secret)
        try:
            yield
        finally:
            await pool.close()

    async def graphql(request: Request) -> Response:
        try:
            payload = orjson.loads(await request.body())
            query = payload["query"]
            variables = payload.get("variables") or {}
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return Response(b'{"errors":[{"message":"bad request"}]}', status_code=400)
        ref = state["ref"]
        if query == queries.ME:
            content = await ref.me(request)
        elif query == queries.USERS:
            content = await ref.users(request, DEFAULT_PAGE, None)
        elif query == queries.USERS_AFTER and isinstance(variables.get("after"), str):
            content = await ref.users(request, DEFAULT_PAGE, variables["after"])
        elif match := USERS_PAGE.fullmatch(query):
            content = await ref.users(request, int(match.group(1)), None)
        else:
            return Response(b'{"errors":[{"message":"unknown document"}]}', status_code=400)
        return Response(content, media_type="application/json")

    async def readyz(request: Request) -> Response:
        await state["ref"].pool.fetchval("SELECT 1")
        return Response(b'{"status":"ready"}', media_type="application/json")

    return Starlette(
        routes=[Route("/graphql", graphql, methods=["POST"]), Route("/readyz", readyz)],
        lifespan=lifespan,
    )


def app_factory() -> Starlette:
    """For ``uvicorn --factory bench.reference_app:app_factory``."""
    return create_app()
