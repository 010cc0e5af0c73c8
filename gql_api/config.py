"""Settings: a YAML file, then ``USER_SERVICE_*`` variables, then ``DATABASE_URL``.

The file is chosen by ``--config PATH`` or by ``USER_SERVICE_ENV`` (development |
production | test; unset means development), which selects ``configs/<env>/config.yaml`` below
the working directory (or ``USER_SERVICE_CONFIG_DIR``); a missing file means the defaults.
Every key of every section can be overridden by ``USER_SERVICE_<SECTION>_<KEY>``, written
either with the underscores of the key (``USER_SERVICE_DATABASE_MAX_OPEN_CONNS``) or without
them, as the seed service spells them (``USER_SERVICE_DATABASE_MAXOPENCONNS``). Durations are
written ``30m``, ``5m``, ``10s``, ``1h30m`` or ``250ms``.

Nothing here does I/O at import time: :func:`load_settings` reads the file and the environment.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, unquote, urlsplit

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "USER_SERVICE_"
MIN_JWT_SECRET_BYTES = 32
DEV_CORS_ORIGIN_REGEX = r"http://(localhost|127\.0\.0\.1)(:[0-9]{1,5})?"

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


class ConfigError(Exception):
    """Settings could not be loaded; the message is one line naming the key and the value."""


def parse_duration(value: Any) -> timedelta:
    """Parse a Go-style duration (``30m``, ``1h30m``, ``10s``); a bare number means seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            return timedelta(seconds=float(text))
        parts = _DURATION_PART.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in parts))
    raise ValueError("expected a duration such as 30m, 5m, 10s or 1h30m")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"
    TEST = "test"


class SSLMode(StrEnum):
    DISABLE = "disable"
    ALLOW = "allow"
    PREFER = "prefer"
    REQUIRE = "require"
    VERIFY_CA = "verify-ca"
    VERIFY_FULL = "verify-full"


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
    # /metrics (gql_api.metrics_exposure): public in development; in production only on a
    # listener of its own (`gql-api serve`) or with the bearer token.
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


def utc_now() -> datetime:
    return datetime.now(UTC)


class Settings(BaseSettings):
    """All settings of one process; built by :func:`load_settings`."""

    model_config = SettingsConfigDict(extra="forbid", validate_default=True)

    env: Environment = Environment.DEVELOPMENT
    database: DatabaseSettings = DatabaseSettings()
    server: ServerSettings = ServerSettings()
    auth: AuthSettings = AuthSettings()
    mail: MailSettings = MailSettings()
    graphql: GraphQLSettings = GraphQLSettings()
    logging: LoggingSettings = LoggingSettings()
    realtime: RealtimeSettings = RealtimeSettings()
    tracing: TracingSettings = TracingSettings()
    # Not configuration: the time the second factor's checks see (TOTP steps, challenge expiry,
    # re-authentication), so that tests inject it instead of sleeping.
    clock: Callable[[], datetime] = Field(default=utc_now, exclude=True, repr=False)

    @property
    def is_production(self) -> bool:
        return self.env == Environment.PRODUCTION

    @property
    def graphiql_enabled(self) -> bool:
        if self.server.graphiql is not None:
            return self.server.graphiql
        return not self.is_production

    @property
    def cors_origin_pattern(self) -> str | None:
        if self.server.cors_origin_regex is not None:
            return self.server.cors_origin_regex or None  # "" turns the default off
        return None if self.is_production else DEV_CORS_ORIGIN_REGEX

    @property
    def introspection_policy(self) -> str:
        if self.graphql.introspection != "auto":
            return self.graphql.introspection
        return "admins" if self.is_production else "all"

    @property
    def suggestions_policy(self) -> str:
        if self.graphql.field_suggestions != "auto":
            return self.graphql.field_suggestions
        return "admins" if self.is_production else "all"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Sources are merged by load_settings, which also reports errors by key.
        return (init_settings,)


def _flatten_env_name(name: str) -> str:
    return name.replace("_", "")


def _section_fields() -> dict[str, type[BaseModel]]:
    return {
        name: field.annotation
        for name, field in Settings.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
    }


def _env_overrides(environ: dict[str, str]) -> dict[str, dict[str, Any]]:
    """``USER_SERVICE_<SECTION>_<KEY>`` with or without the key's underscores."""
    overrides: dict[str, dict[str, Any]] = {}
    for section, model in _section_fields().items():
        for key in model.model_fields:
            spelled = f"{ENV_PREFIX}{section}_{key}".upper()
            squeezed = f"{ENV_PREFIX}{section}_".upper() + _flatten_env_name(key).upper()
            for name in (squeezed, spelled):
                if name in environ:
                    raw: Any = environ[name]
                    annotation = str(model.model_fields[key].annotation)
                    if annotation.startswith("list[") and isinstance(raw, str):
                        raw = [part.strip() for part in raw.split(",") if part.strip()]
                    overrides.setdefault(section, {})[key] = raw
    return overrides


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def config_path_for(env: str, root: Path | None = None) -> Path:
    base = root if root is not None else Path(os.environ.get("USER_SERVICE_CONFIG_DIR", "configs"))
    return base / env / "config.yaml"


def _config_root(environ: dict[str, str]) -> Path:
    return Path(environ.get("USER_SERVICE_CONFIG_DIR", "configs"))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"configuration error: cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"configuration error: {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"configuration error: {path} must hold a mapping of sections")
    return data


def _describe(error: dict[str, Any], merged: dict[str, Any]) -> str:
    loc = [str(part) for part in error["loc"]]
    value: Any = merged
    for part in loc:
        value = value.get(part) if isinstance(value, dict) else None
    key = ".".join(loc)
    return f"configuration error: {key} = {value!r}: {error['msg']}"


def load_settings(
    config_file: str | Path | None = None,
    environ: dict[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build settings from the YAML file, the environment and keyword overrides (in that order).

    Raises :class:`ConfigError` with one line naming the offending key and value.
    """
    env_vars = dict(os.environ if environ is None else environ)
    env_name = env_vars.get(f"{ENV_PREFIX}ENV", "").strip().lower() or None
    if env_name is not None and env_name not in {e.value for e in Environment}:
        raise ConfigError(
            f"configuration error: {ENV_PREFIX}ENV = {env_name!r}: "
            "expected development, production or test"
        )

    data: dict[str, Any] = {}
    if config_file is None and f"{ENV_PREFIX}CONFIG" in env_vars:
        config_file = env_vars[f"{ENV_PREFIX}CONFIG"]
    # No environment chosen means development, and its file is read like any other's.
    file_env = env_name or Environment.DEVELOPMENT.value
    if config_file is not None:
        data = _read_yaml(Path(config_file))
    elif (chosen := config_path_for(file_env, _config_root(env_vars))).is_file():
        data = _read_yaml(chosen)
    if env_name is not None:
        data["env"] = env_name

    data = _deep_merge(data, _env_overrides(env_vars))
    database_url = env_vars.get("DATABASE_URL")
    if database_url and not data.get("database", {}).get("url"):
        data = _deep_merge(data, {"database": {"url": database_url}})
    data = _deep_merge(data, overrides)
    if any(env_vars.get(name) for name in OTEL_ENDPOINT_VARIABLES):
        data = _deep_merge(data, {"tracing": {"enabled": True}})
    if env_vars.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        data = _deep_merge(data, {"tracing": {"enabled": False}})

    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(dict(exc.errors()[0]), data)) from None
    _check_secrets(settings)
    return settings


def _check_secrets(settings: Settings) -> None:
    secret = settings.auth.jwt_secret
    if secret is not None and len(secret.encode()) < MIN_JWT_SECRET_BYTES:
        raise ConfigError(
            f"configuration error: auth.jwt_secret is too short ({len(secret.encode())} bytes): "
            f"use at least {MIN_JWT_SECRET_BYTES} random bytes, e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
        )
    if settings.is_production and secret is None:
        raise ConfigError(
            "configuration error: auth.jwt_secret is missing: production needs "
            f"{ENV_PREFIX}AUTH_JWT_SECRET of at least {MIN_JWT_SECRET_BYTES} bytes"
        )
    mfa_key = settings.auth.mfa_encryption_key
    if mfa_key is not None and len(mfa_key.encode()) < MIN_JWT_SECRET_BYTES:
        raise ConfigError(
            "configuration error: auth.mfa_encryption_key is too short "
            f"({len(mfa_key.encode())} bytes): use at least {MIN_JWT_SECRET_BYTES} random bytes"
        )
    if mfa_key is not None and mfa_key == secret:
        raise ConfigError(
            "configuration error: auth.mfa_encryption_key must differ from auth.jwt_secret"
        )
    if settings.is_production and mfa_key is None:
        raise ConfigError(
            "configuration error: auth.mfa_encryption_key is missing: production needs "
            f"{ENV_PREFIX}AUTH_MFA_ENCRYPTION_KEY of at least {MIN_JWT_SECRET_BYTES} bytes"
        )


def ensure_jwt_secret(settings: Settings, secret_file: Path) -> str:
    """The JWT secret: configured, or (outside production) generated once and kept on disk.

    The MFA encryption key is settled here too (:func:`ensure_mfa_encryption_key`), next to the
    JWT secret file, because every entry point (app, CLI, workers) already calls this."""
    ensure_mfa_encryption_key(settings, secret_file.with_name(MFA_KEY_FILE_NAME))
    if settings.auth.jwt_secret:
        return settings.auth.jwt_secret
    if settings.is_production:  # _check_secrets already refused this; defence in depth
        raise ConfigError("configuration error: auth.jwt_secret is missing")
    settings.auth.jwt_secret = _kept_secret(secret_file)
    return settings.auth.jwt_secret


def _kept_secret(path: Path) -> str:
    """The secret kept in ``path`` (development), made and written there (mode 0600) when the
    file is missing or holds too short a value."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        secret = path.read_text(encoding="utf-8").strip()
        if len(secret.encode()) >= MIN_JWT_SECRET_BYTES:
            return secret
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secret)
    return secret


MFA_KEY_FILE_NAME = "mfa_encryption_key"


def ensure_mfa_encryption_key(settings: Settings, key_file: Path) -> str:
    """The MFA encryption key: configured; in the test environment a random one per process (no
    file); else (development) generated once and kept in ``key_file``. Losing it makes every
    enrolled TOTP factor unusable, so development keeps it like the JWT secret."""
    if settings.auth.mfa_encryption_key:
        return settings.auth.mfa_encryption_key
    if settings.is_production:  # _check_secrets already refused this; defence in depth
        raise ConfigError("configuration error: auth.mfa_encryption_key is missing")
    if settings.env == Environment.TEST:
        settings.auth.mfa_encryption_key = secrets.token_urlsafe(48)
        return settings.auth.mfa_encryption_key
    settings.auth.mfa_encryption_key = _kept_secret(key_file)
    return settings.auth.mfa_encryption_key


def redact_url(url: str) -> str:
    """The URL with its password replaced, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl().replace(unquote(parts.password), "***")
