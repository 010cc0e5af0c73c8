"""Logging: JSON lines in production, readable lines elsewhere, and the request on every line.

:func:`configure_logging` installs one handler on the root logger. Each record that passes it
gets the current request's id, GraphQL operation name, user id and elapsed milliseconds (from a
context variable that :func:`bind_request` sets for the request and the GraphQL extension
fills in), and is scrubbed of anything that looks like a secret: JWTs, bcrypt hashes, SHA-256
digests and ``password``/``token``/``secret`` values. The code does not log secrets in the first
place; the scrubbing is defence in depth.

The JSON formatter is a few lines over orjson (already a dependency) rather than another package:
we need exactly one flat object per line with our context fields, nothing more.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Iterator
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import orjson
from strawberry.extensions import SchemaExtension

from gql_api.config import Settings

# --- the request on every line -----------------------------------------------------------------


@dataclass
class RequestLog:
    """What every log line of one request carries; mutated as the request learns more."""

    request_id: str
    started: float = field(default_factory=time.perf_counter)
    operation: str | None = None
    user_id: str | None = None

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 3)


_current: ContextVar[RequestLog | None] = ContextVar("gql_api_request_log", default=None)


def bind_request(request_id: str) -> tuple[RequestLog, Token[RequestLog | None]]:
    """Start the log context of a request; pass the token to :func:`unbind_request`."""
    entry = RequestLog(request_id=request_id)
    return entry, _current.set(entry)


def unbind_request(token: Token[RequestLog | None]) -> None:
    _current.reset(token)


def current_request() -> RequestLog | None:
    return _current.get()


class RequestLogExtension(SchemaExtension):
    """Names the operation and the caller in the request's log context (two cheap hooks)."""

    def on_operation(self) -> Iterator[None]:
        entry = _current.get()
        if entry is not None:
            viewer = getattr(self.execution_context.context, "viewer", None)
            if viewer is not None:
                entry.user_id = str(viewer.user.id)
            entry.operation = self.execution_context.operation_name
        yield

    def on_execute(self) -> Iterator[None]:
        # Parsed and valid by now: the name the document gives, when the request gave none.
        entry = _current.get()
        if entry is not None and entry.operation is None:
            entry.operation = self.execution_context.operation_name
        yield


# --- scrubbing ---------------------------------------------------------------------------------

_SECRET_KEYS = (
    r"(?:password|passwd|new_?password|current_?password|token|refresh_?token|"
    r"access_?token|secret|authorization|password_?hash|token_?hash)"
)
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # key: value / key=value / "key": "value" (JSON, Python reprs, GraphQL variable errors).
    (
        re.compile(
            rf"""(?i)(["']?\b\w*{_SECRET_KEYS}["']?\s*[:=]\s*)(?:"[^"]*"|'[^']*'|[^\s,;}}&)]+)"""
        ),
        r"\1***",
    ),
    (re.compile(r"(?i)\bBearer\s+[\w.~+/=-]+"), "Bearer ***"),
    (re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]*"), "[jwt]"),
    (re.compile(r"\$2[abxy]?\$\d{2}\$[./A-Za-z0-9]{53}"), "[bcrypt]"),
    (re.compile(r"\b[0-9a-fA-F]{64}\b"), "[sha256]"),
]


# Matches wherever any pattern above could (a superset): most lines (every request's access
# line) have none of these, and one search spares them the five substitutions.
_MAY_HOLD_A_SECRET = re.compile(r"(?i)passw|token|secret|authorization|bearer|eyJ|\$2|[0-9a-f]{64}")


def scrub(text: str) -> str:
    """``text`` with anything that looks like a secret replaced."""
    if _MAY_HOLD_A_SECRET.search(text) is None:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class ContextFilter(logging.Filter):
    """Adds the request's fields and scrubs the message (and the traceback) of secrets.

    Loggers in ``exempt`` are not scrubbed: outside production the log mailer writes the links
    of the mails it cannot send, for the developer to follow.
    """

    def __init__(self, exempt: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.exempt = exempt

    def filter(self, record: logging.LogRecord) -> bool:
        entry = _current.get()
        if not hasattr(record, "request_id"):
            record.request_id = entry.request_id if entry else None
            record.operation = entry.operation if entry else None
            record.user_id = entry.user_id if entry else None
        if not hasattr(record, "duration_ms"):
            record.duration_ms = entry.elapsed_ms() if entry else None
        if record.name in self.exempt:
            return True
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        return True


# --- formats -----------------------------------------------------------------------------------

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "request_id",
    "operation",
    "user_id",
    "duration_ms",
    "taskName",
    # uvicorn repeats its message with ANSI colour codes here, for its own formatter only.
    "color_message",
}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


REQUEST_FIELDS = ("request_id", "operation", "user_id", "duration_ms")


def json_line(
    created: float,
    levelname: str,
    logger: str,
    message: str,
    request: tuple[Any, ...] | None,
    extras: dict[str, Any],
) -> dict[str, Any]:
    """A JSON line's object: ts, level, logger, msg, the request fields, extras."""
    line: dict[str, Any] = {
        "ts": datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"),
        "level": levelname.lower(),
        "logger": logger,
        "msg": message,
    }
    if request is not None:
        # Always the same keys on a request's lines (null until known): easy to query.
        line.update(zip(REQUEST_FIELDS, request, strict=True))
    line.update(extras)
    return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the request fields, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        request = None
        if getattr(record, "request_id", None) is not None:
            request = tuple(getattr(record, key, None) for key in REQUEST_FIELDS)
        head = (record.created, record.levelname, record.name, record.getMessage())
        line = json_line(*head, request, _extras(record))
        if record.exc_info or record.exc_text:
            line["exc"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ... [request op user 12.3ms]``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        request_id = getattr(record, "request_id", None)
        tail = ""
        if request_id:
            parts = [f"req={request_id}"]
            for label, key in (("op", "operation"), ("user", "user_id")):
                value = getattr(record, key, None)
                if value:
                    parts.append(f"{label}={value}")
            duration = getattr(record, "duration_ms", None)
            if duration is not None:
                parts.append(f"{duration}ms")
            tail = f" [{' '.join(parts)}]"
        head, newline, rest = text.partition("\n")  # keep a traceback after the context
        return f"{head}{' ' + extras if extras else ''}{tail}{newline}{rest}"


# --- set-up ------------------------------------------------------------------------------------

DEV_UNSCRUBBED = ("gql_api.mailer",)

# database.log_level follows GORM's levels, as the seed service's guide does: "info" (and
# "debug") log every SQL statement (sqlalchemy.engine logs them at INFO, parameters hidden).
_SQL_LEVELS = {
    "debug": logging.INFO,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "silent": logging.CRITICAL + 1,
}


SERVICE_HANDLER = "gql_api"  # configure_logging's handler (access_line writes to it directly)


def use_json(settings: Settings) -> bool:
    fmt = settings.logging.format
    return fmt == "json" or (fmt == "auto" and settings.is_production)


def configure_logging(settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    """Install the service's handler on the root logger (replacing one installed before)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(SERVICE_HANDLER)
    handler.addFilter(ContextFilter(exempt=() if settings.is_production else DEV_UNSCRUBBED))
    handler.setFormatter(JsonFormatter() if use_json(settings) else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == SERVICE_HANDLER]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.logging.level.upper())
    # Neither format shows the caller's file and line, thread or process: the switches of the
    # logging HOWTO's "Optimization" section skip collecting them for every record (a walk up
    # the stack and three look-ups; the access line is written for every request).
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.getLogger("sqlalchemy.engine").setLevel(_SQL_LEVELS[settings.database.log_level])
    # uvicorn's own lines go through our handler; its access log is replaced by ours, which
    # carries the request id.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    # Alembic announces its context on every revision check (each /readyz): debug only.
    # gql_api.migrations logs one line of its own when it changes the schema.
    debugging = settings.logging.level == "debug"
    logging.getLogger("alembic").setLevel(logging.INFO if debugging else logging.WARNING)
    return handler


__all__ = [
    "ContextFilter",
    "JsonFormatter",
    "RequestLog",
    "RequestLogExtension",
    "TextFormatter",
    "bind_request",
    "configure_logging",
    "current_request",
    "scrub",
    "unbind_request",
]
