"""Portable column types: UTC timestamps that sort correctly on SQLite, JSON/JSONB."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp stored in UTC.

    PostgreSQL keeps it as `timestamptz`. SQLite has no timestamp type, so the
    value is stored as naive UTC text in SQLAlchemy's fixed-width format
    (`YYYY-MM-DD HH:MM:SS.ffffff`), which sorts and compares as text in the same
    order as in time. Values always come back aware, in UTC. Naive values
    coming in are taken to be UTC already.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # raw text from an aggregate on SQLite
            value = datetime.fromisoformat(value)
        return as_utc(value)


def as_utc(value: datetime) -> datetime:
    """Return `value` as an aware UTC datetime; a naive value is taken as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


# JSON everywhere, JSONB on PostgreSQL (smaller, and indexable if ever needed).
JSONType = JSON().with_variant(JSONB(), "postgresql")
