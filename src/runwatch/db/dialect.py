"""The one place that knows SQLite from PostgreSQL: every dialect branch lives here."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.schema import SchemaItem

SQLITE = "sqlite"
POSTGRESQL = "postgresql"


def insert_ignoring_conflicts(table: Table, dialect_name: str) -> Insert:
    """`INSERT … ON CONFLICT DO NOTHING`, built with the dialect's own insert construct."""
    if dialect_name == POSTGRESQL:
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect_name == SQLITE:
        return sqlite.insert(table).on_conflict_do_nothing()
    raise ValueError(f"unsupported database dialect: {dialect_name}")


def applies_to_dialect(item: SchemaItem, dialect_name: str) -> bool:
    """False for a schema item declared with `ddl_if(dialect=…)` for another dialect.

    Alembic's autogenerate does not read `ddl_if`, so the migration environment
    and the schema test use this to compare only what each dialect really has.
    """
    ddl_if: Any = getattr(item, "_ddl_if", None)
    if ddl_if is None or ddl_if.dialect is None:
        return True
    dialects = ddl_if.dialect if isinstance(ddl_if.dialect, (list, tuple)) else [ddl_if.dialect]
    return dialect_name in dialects


def lock_rows_skipping_locked(query: Select[Any], dialect_name: str) -> Select[Any]:
    """`SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL; unchanged on SQLite.

    On PostgreSQL concurrent claimers each lock different rows and never wait
    on one another. SQLite has no row locks: its write transactions begin with
    `BEGIN IMMEDIATE` (see engine.py), so claimers already run one at a time.
    """
    if dialect_name == POSTGRESQL:
        return query.with_for_update(skip_locked=True)
    return query
