"""Settings: a YAML file, then ``USER_SERVICE_*`` variables, then ``DATABASE_URL``
(``loading``); the sections' models (``sections``); value types (``values``); the secrets the
service needs (``secrets``). Everything is re-exported here: ``from gql_api.config import X``."""

from gql_api.config.loading import (
    OTEL_ENDPOINT_VARIABLES,
    Settings,
    config_path_for,
    load_settings,
    utc_now,
)
from gql_api.config.secrets import (
    MFA_KEY_FILE_NAME,
    ensure_jwt_secret,
    ensure_mfa_encryption_key,
)
from gql_api.config.sections import (
    AuthSettings,
    DatabaseSettings,
    GraphQLSettings,
    LoggingSettings,
    MailSettings,
    RealtimeSettings,
    ServerSettings,
    TracingSettings,
)
from gql_api.config.values import (
    DEV_CORS_ORIGIN_REGEX,
    ENV_PREFIX,
    MIN_JWT_SECRET_BYTES,
    ConfigError,
    Environment,
    SSLMode,
    parse_duration,
    redact_url,
)

__all__ = [
    "DEV_CORS_ORIGIN_REGEX",
    "ENV_PREFIX",
    "MFA_KEY_FILE_NAME",
    "MIN_JWT_SECRET_BYTES",
    "OTEL_ENDPOINT_VARIABLES",
    "AuthSettings",
    "ConfigError",
    "DatabaseSettings",
    "Environment",
    "GraphQLSettings",
    "LoggingSettings",
    "MailSettings",
    "RealtimeSettings",
    "SSLMode",
    "ServerSettings",
    "Settings",
    "TracingSettings",
    "config_path_for",
    "ensure_jwt_secret",
    "ensure_mfa_encryption_key",
    "load_settings",
    "parse_duration",
    "redact_url",
    "utc_now",
]
