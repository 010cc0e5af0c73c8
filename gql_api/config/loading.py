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
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from gql_api.config.secrets import check_secrets
from gql_api.config.sections import (
    OTEL_ENDPOINT_VARIABLES,
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
    ConfigError,
    Environment,
)


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
    check_secrets(settings)
    return settings
