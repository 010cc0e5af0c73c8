"""The per-request context: settings, database, caller, loaders. Built by one plain function
(:func:`make_context`) that the app and the tests share."""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from strawberry.fastapi import BaseContext

from gql_api.auth.current import Viewer, authenticate, bearer_token
from gql_api.auth.events import RequestMeta
from gql_api.auth.session_cache import SessionCache
from gql_api.config import Settings
from gql_api.db import Database
from gql_api.graphql.engine.masking import classify
from gql_api.graphql.schema.errors import Forbidden, Unauthenticated
from gql_api.mailer import Mailer, build_mailer


def client_address(request: Request, trusted_proxies: list[str]) -> str | None:
    """The client's address; ``X-Forwarded-For`` counts only when the peer is a trusted proxy."""
    peer = request.client.host if request.client else None
    if peer is None or not trusted_proxies:
        return peer
    networks = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]

    def trusted(addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in net for net in networks)

    if not trusted(peer):
        return peer
    forwarded = [
        a.strip() for a in request.headers.get("x-forwarded-for", "").split(",") if a.strip()
    ]
    # Walk from the nearest hop back; the first address not ours is the client.
    for hop in reversed(forwarded):
        if not trusted(hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer
    return forwarded[0] if forwarded else peer


@dataclass
class Context(BaseContext):
    settings: Settings = field(kw_only=True)
    db: Database = field(kw_only=True)
    request_id: str = field(kw_only=True)
    client_ip: str | None = field(kw_only=True, default=None)
    user_agent: str | None = field(kw_only=True, default=None)
    viewer: Viewer | None = field(kw_only=True, default=None)
    # A bad or revoked token is reported by the first field that asks who is calling, so that
    # the error is a GraphQL error with a code, not a failed HTTP request.
    auth_error: Exception | None = field(kw_only=True, default=None)
    state: dict[str, Any] = field(kw_only=True, default_factory=dict)
    # The session a sign-in in this request started (login, register, refresh, a second
    # factor): ``current`` in the payload that hands it out.
    started_session_id: Any = field(kw_only=True, default=None)

    def __post_init__(self) -> None:
        super().__init__()

    @cached_property
    def loaders(self) -> Any:
        from gql_api.graphql.schema.loaders import Loaders

        return Loaders(self.db)

    @cached_property
    def mailer(self) -> Mailer:
        """SMTP when ``mail.smtp_host`` is set, else the log; built on first use."""
        return build_mailer(self.settings)

    def request_meta(self) -> RequestMeta:
        """Who sent this request, as the audit log records it."""
        return RequestMeta(
            ip_address=self.client_ip, user_agent=self.user_agent, request_id=self.request_id
        )

    def is_current_session(self, session_id: Any) -> bool:
        """Whether it is the session this request is signed in with, or started."""
        if session_id == self.started_session_id:
            return True
        return self.viewer is not None and self.viewer.session_id == session_id

    def current_viewer(self) -> Viewer | None:
        """The caller, None when anonymous; raises when a token was sent but is not valid."""
        if self.auth_error is not None:
            raise self.auth_error
        return self.viewer

    def require_user(self) -> Viewer:
        if self.current_viewer() is None:
            raise Unauthenticated()
        assert self.viewer is not None
        return self.viewer

    def require_admin(self) -> Viewer:
        viewer = self.require_user()
        if viewer.mfa_enrollment_required:
            raise Forbidden(
                "Enrol a second factor first: admins need one (auth.require_mfa_for_admins)",
                reason="MFA_ENROLLMENT_REQUIRED",
            )
        if not viewer.is_admin:
            raise Forbidden("Administrator role required")
        return viewer


async def make_context(
    request: Request,
    response: Response | None,
    *,
    settings: Settings,
    db: Database,
    sessions: SessionCache | None = None,
) -> Context:
    request_id = getattr(request.state, "request_id", None) or uuid.uuid4().hex
    ctx = Context(
        settings=settings,
        # Every checkout made for this request (token check, resolvers, loaders) shares one
        # budget of connections.
        db=db.for_request(),
        request_id=request_id,
        client_ip=client_address(request, settings.server.trusted_proxies),
        user_agent=request.headers.get("user-agent"),
    )
    ctx.request = request
    ctx.response = response
    try:
        token = bearer_token(request.headers.get("authorization"))
        if token is not None:
            ctx.viewer = await authenticate(ctx.db, settings.auth, token, cache=sessions)
            # The caller's writes set their read fence; their staleness-tolerant reads keep it.
            ctx.db.act_as(ctx.viewer.user.id)
    except Exception as exc:
        # A bad token, or database trouble while checking it (down, starting up, pool
        # exhausted, statement timeout), is reported by the first field that asks who is
        # calling, with the same codes as anywhere else. Anything else is a bug: it goes to
        # that field too, where the masking stage logs it with the request id and answers
        # INTERNAL_SERVER_ERROR (a plain 500 here would also drop the keep-alive connection).
        error = classify(exc)
        if error is not None and error is not exc:
            error.__cause__ = exc
        ctx.auth_error = error or exc
    return ctx
