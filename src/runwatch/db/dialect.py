"""What differs between SQLite and PostgreSQL, as one object per database.

`dialect_of(conn)` gives the `Dialect` of a connection, an engine or a
dialect name; the objects are built once, at import. Code that needs a
statement only one database can write asks its dialect for it (an upsert, a
row lock, a bucket truncation, a JSON line) instead of comparing names. The
module functions at the end are what does not depend on a connection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    String,
    Table,
    Text,
    any_,
    bindparam,
    cast,
    func,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.schema import SchemaItem

from runwatch.db.asyncpg_support import records_insert, table_records
from runwatch.db.driver_reads import DriverPlans, Query
from runwatch.db.json_lines import json_line

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
DATA_VERSION_CHANNEL = "runwatch_data_version"


@dataclass(frozen=True)
class Merge:
    """What an upsert does on a key that exists (see `Dialect.upsert`)."""

    key: tuple[str, ...]
    summed: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()
    least: tuple[str, ...] = ()
    greatest: tuple[str, ...] = ()


class Dialect:
    """The SQLite behaviour; `PostgresDialect` overrides what PostgreSQL does otherwise."""

    name = SQLITE
    # Whether writers announce each new data version (LISTEN/NOTIFY), so that
    # a process can know the version without asking.
    announces_versions = False
    # Whether a pooled connection can die under a writer (a server restart):
    # then a write transaction begins with a trivial statement, see deps.py.
    checks_write_connections = False
    # Whether the database writes an export's NDJSON/CSV lines (`select_json_lines`).
    writes_text_lines = False
    # Whether the driver's values need SQLAlchemy's result conversion (driver_reads.py).
    converts_driver_rows = True
    # Whether a batch of new layer runs is added to the rollups by statements
    # that sum it in the database (`batch_upsert`), instead of deltas summed in Python.
    sums_batches = False

    def __init__(self) -> None:
        self._plans = DriverPlans(convert_results=self.converts_driver_rows)

    def insert(self, table: Table) -> Insert:
        return sqlite.insert(table)

    def insert_ignoring_conflicts(self, table: Table) -> Insert:
        """`INSERT … ON CONFLICT DO NOTHING`."""
        return self.insert(table).on_conflict_do_nothing()

    def upsert(
        self,
        table: Table,
        *,
        key: Sequence[str],
        summed: Sequence[str] = (),
        replaced: Sequence[str] = (),
        least: Sequence[str] = (),
        greatest: Sequence[str] = (),
    ) -> Insert:
        """`INSERT … ON CONFLICT (key) DO UPDATE`, for rows given as parameters.

        On a key that exists, `summed` columns are added to (inside the
        database under the row lock, so two writers never lose an update),
        `replaced` ones take the new value, and `least`/`greatest` keep the
        smaller or larger; a null on either side leaves the other.
        """
        stmt = self.insert(table)
        new = stmt.excluded
        set_: dict[str, Any] = {name: table.c[name] + new[name] for name in summed}
        set_ |= {name: new[name] for name in replaced}
        set_ |= {name: self._least(table.c[name], new[name]) for name in least}
        set_ |= {name: self._greatest(table.c[name], new[name]) for name in greatest}
        return stmt.on_conflict_do_update(index_elements=list(key), set_=set_)

    def _least(self, old: Any, new: Any) -> Any:
        # SQLite's two-argument min() is null when either side is.
        return func.min(func.coalesce(old, new), func.coalesce(new, old))

    def _greatest(self, old: Any, new: Any) -> Any:
        return func.max(func.coalesce(old, new), func.coalesce(new, old))

    async def upsert_many(
        self,
        conn: AsyncConnection,
        table: Table,
        rows: Sequence[Mapping[str, Any]],
        *,
        key: Sequence[str],
        summed: Sequence[str] = (),
        replaced: Sequence[str] = (),
        least: Sequence[str] = (),
        greatest: Sequence[str] = (),
    ) -> None:
        """`upsert` of many rows with distinct keys (all with the same columns), in their order.

        Writers that sort their rows lock them in the same order.
        """
        if rows:
            merge = Merge(tuple(key), tuple(summed), tuple(replaced), tuple(least), tuple(greatest))
            await self._upsert_rows(conn, table, rows, merge)

    async def _upsert_rows(
        self, conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]], merge: Merge
    ) -> None:
        await conn.execute(self.upsert(table, **vars(merge)), list(rows))

    def batch_upsert(
        self,
        table: Table,
        selects: Sequence[Select[Any]],
        *,
        key: Sequence[str],
        summed: Sequence[str] = (),
        least: Sequence[str] = (),
        greatest: Sequence[str] = (),
    ) -> Insert:
        """`upsert` of the rows `selects` yield (named as `table`'s columns), in key order.

        The rows go in `key` order, strings by code point: the order in which
        the callers of `upsert_many` sort theirs in Python, so that a batch
        and a single write lock the rows of one table in the same order.
        """
        rows = (selects[0] if len(selects) == 1 else union_all(*selects)).subquery("batch")
        ordered = select(*rows.c).order_by(*(self.code_point_order(rows.c[k]) for k in key))
        upsert = self.upsert(table, key=key, summed=summed, least=least, greatest=greatest)
        return upsert.from_select([c.name for c in rows.c], ordered)

    def code_point_order(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        """`column` to sort strings by code point (SQLite's own BINARY collation does)."""
        return column

    def among(self, column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
        """`column` is one of the list given as parameter `name`."""
        return column.in_(bindparam(name, expanding=True))

    async def insert_many_ignoring_conflicts(
        self,
        conn: AsyncConnection,
        table: Table,
        rows: Sequence[Mapping[str, Any]],
        *,
        returning: str | None = None,
    ) -> list[Any]:
        """Insert `rows` (all with the same keys), skipping existing keys; returns `returning`'s."""
        if not rows:
            return []
        return await self._insert_rows(conn, table, rows, returning)

    async def _insert_rows(
        self,
        conn: AsyncConnection,
        table: Table,
        rows: Sequence[Mapping[str, Any]],
        returning: str | None,
    ) -> list[Any]:
        stmt = self.insert_ignoring_conflicts(table)
        if returning is None:
            await conn.execute(stmt, list(rows))
            return []
        stmt = stmt.returning(table.c[returning])
        return list((await conn.execute(stmt, list(rows))).scalars())

    async def fetch_all(
        self, conn: AsyncConnection, query: Query, params: Mapping[str, Any]
    ) -> list[Mapping[str, Any]]:
        """The rows of a read, as mappings, run on the driver's own connection (see
        driver_reads.py). `query` is one of the statements kept by shape."""
        found = await self._plans.rows(conn, query, params, self._driver_fetch)
        if found is None:
            return [row._mapping for row in await conn.execute(query, params)]
        plan, rows = found
        keys = plan.keys
        return [dict(zip(keys, row, strict=True)) for row in plan.convert(rows)]

    async def fetch_rows(
        self, conn: AsyncConnection, query: Query, params: Mapping[str, Any]
    ) -> Sequence[Sequence[Any]]:
        """The rows of a read by position, as `fetch_all` runs it: for many rows that only
        pass through."""
        found = await self._plans.rows(conn, query, params, self._driver_fetch)
        if found is None:
            return list(await conn.execute(query, params))
        plan, rows = found
        return plan.convert(rows)

    async def _driver_fetch(self, driver: Any, sql: str, args: list[Any]) -> Sequence[Any]:
        """aiosqlite: the statement run and its rows fetched in one trip to its thread."""
        return list(await driver.execute_fetchall(sql, args))

    def lock_rows(self, query: Select[Any]) -> Select[Any]:
        """`SELECT … FOR UPDATE`; SQLite's write transactions are already exclusive."""
        return query

    def lock_rows_skipping_locked(self, query: Select[Any]) -> Select[Any]:
        """`SELECT … FOR UPDATE SKIP LOCKED`: concurrent claimers lock different rows.

        SQLite has no row locks: its write transactions begin with `BEGIN
        IMMEDIATE` (see engine.py), so claimers already run one at a time.
        """
        return query

    def round_half_up_to_int(self, expr: ColumnElement[Any]) -> ColumnElement[Any]:
        """`floor(expr + 0.5)` as an integer, for non-negative values.

        SQLite's floor() exists only when it was built with its math functions;
        casting truncates, which is the same for non-negative values.
        """
        return cast(expr + 0.5, Integer)

    def truncate_to(self, grain: str, column: ColumnElement[Any]) -> ColumnElement[Any]:
        """The start of the UTC hour, day or month of a timestamp, in the column's own storage."""
        pattern = {
            "hour": "%Y-%m-%d %H:00:00.000000",
            "day": "%Y-%m-%d 00:00:00.000000",
            "month": "%Y-%m-01 00:00:00.000000",
        }[grain]
        return func.strftime(pattern, column)

    def announce_new_version(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        """What a version bump returns; SQLite has no notifications, readers ask instead."""
        return column

    async def serves_from_standby(self, conn: AsyncConnection) -> bool:
        """Whether the connection is to a hot standby (asked once per pooled connection)."""
        return False

    def select_json_lines(
        self,
        table: Table,
        pairs: Sequence[tuple[str, ColumnElement[Any]]],
        keys: Sequence[ColumnElement[Any]],
    ) -> Select[Any] | None:
        """`line` (each row as one compact JSON object, written by the database) and `keys`.

        Used where rows only pass through (an NDJSON export): Python then joins
        lines instead of building and encoding an object per row. None on
        SQLite, whose `json_object` depends on the library's version: Python
        writes the objects there.
        """
        return None


class PostgresDialect(Dialect):
    name = POSTGRESQL
    announces_versions = True
    checks_write_connections = True
    writes_text_lines = True

    converts_driver_rows = False  # asyncpg's own types are SQLAlchemy's
    sums_batches = True

    async def _driver_fetch(self, driver: Any, sql: str, args: list[Any]) -> Sequence[Any]:
        """asyncpg: a statement prepared once per connection."""
        return await driver.fetch(sql, *args)

    def insert(self, table: Table) -> Insert:
        return postgresql.insert(table)

    def _least(self, old: Any, new: Any) -> Any:
        return func.least(old, new)  # ignores nulls

    def _greatest(self, old: Any, new: Any) -> Any:
        return func.greatest(old, new)

    async def _upsert_rows(
        self, conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]], merge: Merge
    ) -> None:
        """One `INSERT … SELECT FROM unnest(rows) ON CONFLICT …`, whatever the number of rows.

        The rows go as one array of the table's row type, which the driver
        encodes in C (see `table_records`); the statement text is the same for
        any batch size (prepared once per connection), and `unnest` keeps the
        rows' order.
        """
        name = table.name
        updates = [f"{c} = {name}.{c} + excluded.{c}" for c in merge.summed]
        updates += [f"{c} = excluded.{c}" for c in merge.replaced]
        updates += [f"{c} = least({name}.{c}, excluded.{c})" for c in merge.least]
        updates += [f"{c} = greatest({name}.{c}, excluded.{c})" for c in merge.greatest]
        action = f"DO UPDATE SET {', '.join(updates)}" if updates else "DO NOTHING"
        columns = list(rows[0])
        sql = f"{records_insert(table, columns)} ON CONFLICT ({', '.join(merge.key)}) {action}"
        await conn.exec_driver_sql(sql, (table_records(table, rows),))

    async def _insert_rows(
        self,
        conn: AsyncConnection,
        table: Table,
        rows: Sequence[Mapping[str, Any]],
        returning: str | None,
    ) -> list[Any]:
        """One `INSERT … SELECT FROM unnest(rows) ON CONFLICT DO NOTHING` (see above)."""
        columns = list(rows[0])
        sql = f"{records_insert(table, columns)} ON CONFLICT DO NOTHING"
        if returning is not None:
            sql += f" RETURNING {returning}"
        result = await conn.exec_driver_sql(sql, (table_records(table, rows),))
        return [] if returning is None else list(result.scalars())

    def code_point_order(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        # The database's collation may order words as a language does.
        return column.collate("C") if isinstance(column.type, String) else column

    def among(self, column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
        """`column = ANY($n)`: one array parameter, whatever its length."""
        return column == any_(bindparam(name, type_=postgresql.ARRAY(column.type)))

    def lock_rows(self, query: Select[Any]) -> Select[Any]:
        return query.with_for_update()

    def lock_rows_skipping_locked(self, query: Select[Any]) -> Select[Any]:
        return query.with_for_update(skip_locked=True)

    def round_half_up_to_int(self, expr: ColumnElement[Any]) -> ColumnElement[Any]:
        return cast(func.floor(expr + 0.5), BigInteger)

    def truncate_to(self, grain: str, column: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.timezone("UTC", func.date_trunc(grain, func.timezone("UTC", column)))

    def announce_new_version(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        """The new version, and a NOTIFY to listening API processes.

        `pg_notify` is transactional: listeners hear the new version when, and
        only when, the writer commits.
        """
        return func.pg_notify(DATA_VERSION_CHANNEL, cast(column, Text))

    async def serves_from_standby(self, conn: AsyncConnection) -> bool:
        if "in_recovery" not in conn.info:
            result = await conn.execute(select(func.pg_is_in_recovery()))
            conn.info["in_recovery"] = bool(result.scalar_one())
        return conn.info["in_recovery"]

    def select_json_lines(
        self,
        table: Table,
        pairs: Sequence[tuple[str, ColumnElement[Any]]],
        keys: Sequence[ColumnElement[Any]],
    ) -> Select[Any] | None:
        """Each row as one line of compact JSON, written by the database (see `json_lines.py`)."""
        return select(json_line(pairs).label("line"), *keys).select_from(table)


DIALECTS: dict[str, Dialect] = {SQLITE: Dialect(), POSTGRESQL: PostgresDialect()}


def dialect_of(source: AsyncConnection | AsyncEngine | str) -> Dialect:
    """The `Dialect` of a connection, an engine, or a dialect name."""
    name = source if isinstance(source, str) else source.dialect.name
    try:
        return DIALECTS[name]
    except KeyError:
        raise ValueError(f"unsupported database dialect: {name}") from None


# --- what needs no connection ------------------------------------------------------


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


def json_object_value(pairs: Sequence[tuple[str, ColumnElement[Any]]]) -> ColumnElement[Any]:
    """PostgreSQL `json_build_object(key, value, …)`; the keys are the caller's constants."""
    args: list[ColumnElement[Any]] = []
    for key, value in pairs:
        if not key.replace("_", "").isalnum():
            raise ValueError(f"not a plain key: {key!r}")
        args += [literal_column(f"'{key}'", Text), value]
    return func.json_build_object(*args)
