"""What an edit changed, as audit entries record it: ``{field: {"old": ..., "new": ...}}``."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def _plain(value: Any) -> Any:
    # Audit changes are JSONB: datetimes go in as ISO strings.
    return value.isoformat() if isinstance(value, datetime) else value


def diff(old: dict[str, Any], new: dict[str, Any], *, prefix: str = "") -> dict[str, Any]:
    """The fields of ``new`` whose value differs from ``old`` (absent counts as None)."""
    return {
        f"{prefix}{field}": {"old": _plain(old.get(field)), "new": _plain(value)}
        for field, value in new.items()
        if old.get(field) != value
    }


def snapshot(row: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    return {field: getattr(row, field) for field in fields} if row is not None else {}
