"""The settings' sections, one model each: database, server, auth, mail, graphql, realtime,
logging, tracing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gql_api.config.values import (
    Duration,
    SSLMode,
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class DatabaseSettings(_Section):
    """Where PostgreSQL is and how the pool treats it.

    No ``url`` and no ``host`` means the embedded PostgreSQL in ``data_dir``.
    Pool mapping onto SQLAlchemy: ``max_idle_conns`` -> ``pool_size`` (connections kept open),
    ``max_open_conns - max_idle_conns`` -> ``max_overflow`` (extra connections closed when
    returned), ``conn_max_lifetime`` -> ``pool_recycle``, ``conn_max_idle_time`` -> a checkout
    hook that closes a connection idle for longer, ``pool_timeout`` -> how long a request waits
    for a free connection.
    """

    url: str | None = None
    host: str | None = None
    port: int = Field(5432, ge=1, le=65535)
    username: str = "postgres"
    password: str = ""
    database: str = "api_server"  # the guide's `psql -d api_server`
    sslmode: SSLMode = SSLMode.DISABLE
    max_open_conns: int = Field(25, ge=1, le=10_000)
    max_idle_conns: int = Field(5, ge=0, le=10_000)
    conn_max_lifetime: Duration = timedelta(minutes=30)
    conn_max_idle_time: Duration = timedelta(minutes=5)
    pool_timeout: Duration = timedelta(seconds=10)
    # Connections one request may hold at once, whatever its aliases (the rest of its
    # database work waits for one of them, at most pool_timeout).
    max_conns_per_request: int = Field(3, ge=1, le=10_000)
    connect_timeout: Duration = timedelta(seconds=5)
    statement_timeout: Duration = timedelta(seconds=30)
    log_level: Literal["debug", "info", "warn", "warning", "error", "silent"] = "warn"
    # PgBouncer in transaction pooling mode cannot keep prepared statements per connection.
    disable_prepared_statements: bool = False
    # Where the embedded PostgreSQL keeps its data when no server is configured.
    data_dir: Path = Path(".gql_api/pgdata")
    # Streaming replicas for the reads that tolerate a little staleness (gql_api.db.replicas),
    # used in turn; ``read_replica_url`` (one URL) is the older spelling, still accepted.
    read_replica_urls: list[str] = []
    read_replica_url: str | None = None
    # A replica further behind than this, or not answering, leaves the rotation until it
    # catches up; how often each replica's replay position is checked.
    replica_max_lag: Duration = timedelta(seconds=5)
    replica_check_interval: Duration = timedelta(seconds=1)
    # How often the server removes expired sessions, spent tokens and old attempts; 0 disables.
    cleanup_interval: Duration = timedelta(minutes=10)

    @field_validator("url", "read_replica_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if urlsplit(value).scheme not in {"postgres", "postgresql", "postgresql+asyncpg"}:
            raise ValueError("expected a postgresql:// URL")
        return value

    @field_validator("read_replica_urls")
    @classmethod
    def _postgres_urls(cls, values: list[str]) -> list[str]:
        return [url for url in (cls._postgres_url(v) for v in values) if url is not None]

    @property
    def replica_urls(self) -> list[str]:
        """Every configured replica: ``read_replica_urls`` and the older single setting."""
        urls = list(self.read_replica_urls)
        if self.read_replica_url and self.read_replica_url not in urls:
            urls.append(self.read_replica_url)
        return urls

    @property
    def embedded(self) -> bool:
        return self.url is None and not self.host

    def server_url(self) -> str | None:
        """The configured server as a ``postgresql://`` URL, or None for the embedded one."""
        if self.url:
            return self.url
        if not self.host:
            return None
        user = quote(self.username, safe="")
        password = f":{quote(self.password, safe='')}" if self.password else ""
        query = f"?sslmode={self.sslmode.value}" if self.sslmode != SSLMode.DISABLE else ""
        return (
            f"postgresql://{user}{password}@{self.host}:{self.port}/"
            f"{quote(self.database, safe='')}{query}"
        )


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    graphiql: bool | None = None  # None: on in development, off in production
    cors_origins: list[str] = []
    # Origins allowed by pattern as well (Starlette's allow_origin_regex). None: in development
    # any port of http://localhost and http://127.0.0.1 (a frontend's dev server), in
    # production none (an explicit cors_origins list only).
    cors_origin_regex: str | None = None
    trusted_proxies: list[str] = []
    shutdown_grace_period: Duration = timedelta(seconds=20)
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    # /metrics (gql_api.observability.metrics_exposure): public in development; in production
    # only on a listener of its own (`gql-api serve`) or with the bearer token.
    metrics_port: int | None = Field(None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"
    metrics_token: str | None = Field(None, min_length=16)


class AuthSettings(_Section):
    jwt_secret: str | None = None
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    jwt_issuer: str = "gql_api"
    jwt_audience: str = "gql_api"
    access_token_ttl: Duration = timedelta(minutes=15)
    session_lifetime: Duration = timedelta(days=30)
    session_idle_timeout: Duration = timedelta(days=7)
    refresh_reuse_grace: Duration = timedelta(seconds=10)
    bcrypt_rounds: int = Field(12, ge=4, le=31)
    verification_token_ttl: Duration = timedelta(hours=24)
    reset_token_ttl: Duration = timedelta(hours=1)
    login_max_failures_per_account: int = Field(5, ge=1)
    login_max_failures_per_address: int = Field(50, ge=1)
    login_failure_window: Duration = timedelta(minutes=15)
    register_max_per_address: int = Field(30, ge=1)
    register_window: Duration = timedelta(minutes=15)
    # Password-reset and verification mails: per recipient (silently not sent beyond the limit,
    # so that no answer tells whether an account exists) and per requesting address.
    mail_max_per_recipient: int = Field(3, ge=1)
    mail_max_per_address: int = Field(20, ge=1)
    mail_window: Duration = timedelta(hours=1)
    # Signing in on more devices than this revokes the least recently used session.
    max_sessions_per_user: int = Field(10, ge=1, le=1000)
    # Second factor (gql_api/auth/mfa/). The key TOTP secrets are encrypted with (through
    # HKDF); not the JWT secret. Required in production; elsewhere generated and kept next to
    # the JWT secret file (in memory only for the test environment).
    mfa_encryption_key: str | None = Field(None, repr=False)
    mfa_issuer: str = Field("gql_api", min_length=1, max_length=64)
    mfa_challenge_ttl: Duration = timedelta(minutes=5)
    mfa_max_attempts_per_challenge: int = Field(5, ge=1, le=100)
    # Wrong codes per account in login_failure_window, over all challenges and replicas.
    mfa_max_failures_per_account: int = Field(10, ge=1)
    # Enrolling, regenerating codes: the session must have signed in this recently, or the
    # call must carry the password.
    mfa_reauth_window: Duration = timedelta(minutes=5)
    # Admins without a factor may only enrol one until they have it.
    require_mfa_for_admins: bool = False
    # A session that passed the per-request check is trusted this long without a database
    # read, while PostgreSQL's notifications of changes arrive (gql_api/auth/session_cache.py);
    # 0: read the database on every request. Bounded by the bytes its viewers take.
    session_cache_ttl: Duration = timedelta(seconds=10)
    session_cache_bytes: int = Field(8 * 1024 * 1024, ge=0)


class MailSettings(_Section):
    smtp_host: str | None = None
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    sender: str = "no-reply@api-server.com"
    public_url: str = "http://127.0.0.1:8000"


class GraphQLSettings(_Section):
    """Limits on what one request may ask, checked before any resolver runs."""

    max_depth: int = Field(10, ge=1, le=100)
    max_aliases: int = Field(15, ge=0, le=1000)
    # Room for the __typename fields Apollo Client adds to every selection.
    max_tokens: int = Field(2000, ge=50, le=1_000_000)
    # Characters of query text, comments included (lexing them costs CPU whatever the tokens).
    max_query_length: int = Field(100_000, ge=1000)
    max_cost: int = Field(5000, ge=1)
    max_page_size: int = Field(100, ge=1, le=10_000)
    # Checked before validation, whose cost grows with them (graphql/documents.py): fragment
    # definitions; field selections with every fragment spread written out (GraphiQL's
    # introspection query has about 230; max_cost bounds executed fields anyway); one response
    # field selected at one place; fragments spread into one place.
    max_fragments: int = Field(100, ge=1, le=10_000)
    max_fields: int = Field(500, ge=1, le=100_000)
    max_field_repeats: int = Field(20, ge=1, le=10_000)
    max_fragment_spreads: int = Field(20, ge=1, le=10_000)
    # Who may introspect: auto = everyone in development, admins only in production.
    introspection: Literal["auto", "all", "admins", "off"] = "auto"
    # "Did you mean ...?" hints in validation errors: auto = off for non-admins in production.
    field_suggestions: Literal["auto", "all", "admins"] = "auto"
    batching: bool = False
    max_batch_size: int = Field(10, ge=1, le=100)
    # Apollo automatic persisted queries, shared by all replicas through PostgreSQL.
    persisted_queries: bool = True
    # The in-process cache in front of PostgreSQL: entries and bytes of document text.
    persisted_query_cache_size: int = Field(1000, ge=0)
    persisted_query_cache_bytes: int = Field(8 * 1024 * 1024, ge=0)
    # What anonymous clients may store (graphql/persisted.py): one document (without comments
    # and whitespace) at most max_bytes (PERSISTED_QUERY_TOO_LARGE beyond); the store at most
    # store_max_bytes / store_max_entries, least recently used entries evicted first; entries
    # unused for idle_ttl go at the periodic cleanup. Registered (trusted) documents are exempt.
    persisted_query_max_bytes: int = Field(32 * 1024, ge=256)
    persisted_query_store_max_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    persisted_query_store_max_entries: int = Field(10_000, ge=1)
    persisted_query_idle_ttl: Duration = timedelta(days=7)
    # Trusted documents: only registered operations run (admins may still send ad-hoc ones).
    trusted_documents_only: bool = False
    # Run validated queries through the planned executor (graphql/planned.py) when it can.
    fast_execution: bool = True


class RealtimeSettings(_Section):
    """GraphQL subscriptions over WebSocket (gql_api/realtime/, graphql/websocket.py)."""

    # Off: /graphql accepts no WebSocket upgrade and no LISTEN connection is opened.
    enabled: bool = True
    # The one LISTEN connection per process connects here directly (not through PgBouncer in
    # transaction mode, which cannot keep a LISTEN); None: the database URL.
    listen_url: str | None = None
    max_sockets: int = Field(10_000, ge=1)
    max_sockets_per_user: int = Field(20, ge=1)
    max_subscriptions_per_socket: int = Field(10, ge=1, le=1000)
    # One client message (connection_init, subscribe) at most this many bytes.
    max_message_bytes: int = Field(64 * 1024, ge=1024)
    # Events waiting for one subscription; a client that lets it fill is closed with 4429.
    queue_size: int = Field(256, ge=1, le=100_000)
    # connection_init must arrive (and authenticate) within this.
    init_timeout: Duration = timedelta(seconds=10)
    # The server pings this often and closes a socket silent for idle_timeout (4408).
    ping_interval: Duration = timedelta(seconds=30)
    idle_timeout: Duration = timedelta(seconds=90)
    # The LISTEN connection reconnects with doubling delays up to this.
    reconnect_max_delay: Duration = timedelta(seconds=5)

    @field_validator("listen_url")
    @classmethod
    def _listen_url(cls, value: str | None) -> str | None:
        return DatabaseSettings._postgres_url(value)


class LoggingSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "text"] = "auto"


class TracingSettings(_Section):
    # OpenTelemetry (gql_api.observability.tracing). OTEL_EXPORTER_OTLP_ENDPOINT (or
    # ..._TRACES_ENDPOINT) in the environment turns it on, OTEL_SDK_DISABLED=true off.
    enabled: bool = False
    # The client's address and the URL's query string (GET /graphql?variables=... may hold
    # passwords) stay out of the HTTP span unless these say otherwise.
    record_client_address: bool = False
    record_query_string: bool = False


OTEL_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
