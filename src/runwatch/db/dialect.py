"""The one place that knows SQLite from PostgreSQL: every dialect branch lives here."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    DateTime,
    Double,
    Float,
    Integer,
    Numeric,
    Select,
    Table,
    Text,
    TypeDecorator,
    cast,
    func,
    literal_column,
    select,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
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


def _insert(table: Table, dialect_name: str) -> Any:
    if dialect_name == POSTGRESQL:
        return postgresql.insert(table)
    if dialect_name == SQLITE:
        return sqlite.insert(table)
    raise ValueError(f"unsupported database dialect: {dialect_name}")


def upsert_replacing(
    table: Table, dialect_name: str, *, key: Sequence[str], replaced: Sequence[str]
) -> Insert:
    """`INSERT … ON CONFLICT (key) DO UPDATE SET col = excluded.col` for `replaced`."""
    stmt = _insert(table, dialect_name)
    return stmt.on_conflict_do_update(
        index_elements=list(key), set_={name: stmt.excluded[name] for name in replaced}
    )


def upsert_adding(
    table: Table, dialect_name: str, *, key: Sequence[str], summed: Sequence[str]
) -> Insert:
    """`INSERT … ON CONFLICT (key) DO UPDATE SET col = col + excluded.col` for `summed`.

    The addition happens inside the database under the row lock, so two
    writers adding to the same row never lose an update.
    """
    stmt = _insert(table, dialect_name)
    return stmt.on_conflict_do_update(
        index_elements=list(key),
        set_={name: table.c[name] + stmt.excluded[name] for name in summed},
    )


def _array_type(column: Any) -> str:
    """The PostgreSQL array type that carries a column's values through `unnest`."""
    type_ = column.type
    type_ = getattr(type_, "_variant_mapping", {}).get(POSTGRESQL, type_)
    if isinstance(type_, TypeDecorator):
        type_ = type_.impl
    if isinstance(type_, DateTime):
        return "timestamptz[]"
    if isinstance(type_, BigInteger):
        return "int8[]"
    if isinstance(type_, Integer):
        return "int4[]"
    if isinstance(type_, Double | Float):
        return "float8[]"
    if isinstance(type_, Numeric):
        return "numeric[]"
    if isinstance(type_, JSON):
        return "text[]"  # encoded here, cast to jsonb in the statement
    return "text[]"


def _unnest_select(table: Table, columns: Sequence[str]) -> str:
    arrays = []
    for i, name in enumerate(columns, start=1):
        column = table.c[name]
        array = f"${i}::{_array_type(column)}"
        arrays.append(array)
    selected = [
        f"v.{name}::jsonb" if isinstance(table.c[name].type, JSON) else f"v.{name}"
        for name in columns
    ]
    return (
        f"SELECT {', '.join(selected)} FROM unnest({', '.join(arrays)}) AS v({', '.join(columns)})"
    )


def _columns_of(table: Table, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> tuple:
    out = []
    for name in columns:
        if isinstance(table.c[name].type, JSON):
            out.append([None if r[name] is None else json.dumps(r[name]) for r in rows])
        else:
            out.append([r[name] for r in rows])
    return tuple(out)


async def insert_many_ignoring_conflicts(
    conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]], *, returning: str
) -> list[Any]:
    """Insert `rows` (all with the same keys) skipping existing keys; the inserted `returning`.

    On PostgreSQL one statement carries every row as one array per column
    (`INSERT … SELECT … FROM unnest(…)`): the driver encodes arrays in C, and
    the statement is the same whatever the number of rows. SQLite takes the
    rows as one multi-row insert.
    """
    if not rows:
        return []
    columns = list(rows[0])
    if conn.dialect.name == POSTGRESQL:
        sql = (
            f"INSERT INTO {table.name} ({', '.join(columns)}) {_unnest_select(table, columns)} "
            f"ON CONFLICT DO NOTHING RETURNING {returning}"
        )
        result = await conn.exec_driver_sql(sql, _columns_of(table, columns, rows))
        return list(result.scalars())
    stmt = insert_ignoring_conflicts(table, conn.dialect.name).returning(table.c[returning])
    return list((await conn.execute(stmt, list(rows))).scalars())


async def upsert_many_adding(
    conn: AsyncConnection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    key: Sequence[str],
    summed: Sequence[str],
) -> None:
    """`upsert_adding` for many rows with distinct keys, in one statement on PostgreSQL.

    Rows are applied in the order given (`unnest` keeps it), so writers that
    sort their rows lock them in the same order.
    """
    if not rows:
        return
    if conn.dialect.name == POSTGRESQL:
        columns = [*key, *summed]
        additions = ", ".join(f"{n} = {table.name}.{n} + excluded.{n}" for n in summed)
        sql = (
            f"INSERT INTO {table.name} ({', '.join(columns)}) {_unnest_select(table, columns)} "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {additions}"
        )
        await conn.exec_driver_sql(sql, _columns_of(table, columns, rows))
        return
    await conn.execute(upsert_adding(table, conn.dialect.name, key=key, summed=summed), list(rows))


def round_half_up_to_int(expr: ColumnElement[Any], dialect_name: str) -> ColumnElement[Any]:
    """`floor(expr + 0.5)` as an integer, for non-negative values.

    SQLite's floor() exists only when it was built with its math functions;
    casting truncates, which is the same for non-negative values.
    """
    if dialect_name == SQLITE:
        return cast(expr + 0.5, Integer)
    return cast(func.floor(expr + 0.5), BigInteger)


def lock_rows(query: Select[Any], dialect_name: str) -> Select[Any]:
    """`SELECT … FOR UPDATE` on PostgreSQL; on SQLite the write transaction is already exclusive."""
    if dialect_name == POSTGRESQL:
        return query.with_for_update()
    return query


def truncate_to(grain: str, column: ColumnElement[Any], dialect_name: str) -> ColumnElement[Any]:
    """The start of the UTC hour, day or month of a timestamp, in the column's own storage."""
    if dialect_name == SQLITE:
        pattern = {
            "hour": "%Y-%m-%d %H:00:00.000000",
            "day": "%Y-%m-%d 00:00:00.000000",
            "month": "%Y-%m-01 00:00:00.000000",
        }[grain]
        return func.strftime(pattern, column)
    return func.timezone("UTC", func.date_trunc(grain, func.timezone("UTC", column)))


DATA_VERSION_CHANNEL = "runwatch_data_version"


def announce_new_version(column: ColumnElement[Any], dialect_name: str) -> ColumnElement[Any]:
    """What a version bump returns: on PostgreSQL it also NOTIFYs listening API processes.

    `pg_notify` is transactional: listeners hear the new version when, and only
    when, the writer commits. SQLite has no notifications; readers ask instead.
    """
    if dialect_name == POSTGRESQL:
        return func.pg_notify(DATA_VERSION_CHANNEL, cast(column, Text))
    return column


async def serves_from_standby(conn: AsyncConnection) -> bool:
    """Whether the connection is to a PostgreSQL hot standby (asked once per pooled connection)."""
    if conn.dialect.name != POSTGRESQL:
        return False
    if "in_recovery" not in conn.info:
        result = await conn.execute(select(func.pg_is_in_recovery()))
        conn.info["in_recovery"] = bool(result.scalar_one())
    return conn.info["in_recovery"]


def upsert_adding_with_extremes(
    table: Table,
    dialect_name: str,
    *,
    key: Sequence[str],
    summed: Sequence[str],
    least: Sequence[str] = (),
    greatest: Sequence[str] = (),
) -> Insert:
    """`upsert_adding`, and also keep the smallest of `least` and the largest of `greatest`.

    A null on either side leaves the other value (PostgreSQL's `least` and
    `greatest` ignore nulls; SQLite's two-argument `min`/`max` do not, hence
    the coalesces).
    """
    stmt = _insert(table, dialect_name)
    set_: dict[str, Any] = {name: table.c[name] + stmt.excluded[name] for name in summed}
    for names, pg_fn, lite_fn in (
        (least, func.least, func.min),
        (greatest, func.greatest, func.max),
    ):
        for name in names:
            old, new = table.c[name], stmt.excluded[name]
            if dialect_name == POSTGRESQL:
                set_[name] = pg_fn(old, new)
            else:
                set_[name] = lite_fn(func.coalesce(old, new), func.coalesce(new, old))
    return stmt.on_conflict_do_update(index_elements=list(key), set_=set_)


def select_json_lines(
    table: Table,
    pairs: Sequence[tuple[str, ColumnElement[Any]]],
    keys: Sequence[ColumnElement[Any]],
    dialect_name: str,
) -> Select[Any] | None:
    """`line` (each row as one compact JSON object, written by the database) and `keys`.

    Used where rows only pass through (an NDJSON export): Python then joins
    lines instead of building and encoding an object per row. On PostgreSQL,
    `row_to_json` of a lateral row of the values (compact, unlike
    `json_build_object`'s `"key" : value`); None on SQLite, whose `json_object`
    depends on the library's version: Python writes the objects there. Nest
    objects with `json_object_value`.
    """
    if dialect_name != POSTGRESQL:
        return None
    values = (
        select(*(value.label(key) for key, value in pairs)).correlate(table).lateral("export_row")
    )
    line = cast(func.row_to_json(literal_column("export_row")), Text).label("line")
    return select(line, *keys).select_from(table).join(values, true())


def json_object_value(pairs: Sequence[tuple[str, ColumnElement[Any]]]) -> ColumnElement[Any]:
    """PostgreSQL `json_build_object(key, value, …)`; the keys are the caller's constants."""
    args: list[ColumnElement[Any]] = []
    for key, value in pairs:
        if not key.replace("_", "").isalnum():
            raise ValueError(f"not a plain key: {key!r}")
        args += [literal_column(f"'{key}'", Text), value]
    return func.json_build_object(*args)


def rfc3339_text(column: ColumnElement[Any]) -> ColumnElement[str]:
    """PostgreSQL: a timestamptz as the API writes it, `2026-01-23T03:00:00.25Z`.

    UTC, whole seconds, then the microseconds without trailing zeros (none when
    zero), then `Z`; null stays null.
    """
    utc = func.timezone(literal_column("'UTC'", Text), column)
    whole = func.to_char(utc, literal_column("'YYYY-MM-DD\"T\"HH24:MI:SS'", Text), type_=Text)
    digits = func.rtrim(func.to_char(utc, literal_column("'US'", Text)), literal_column("'0'"))
    micro = func.nullif(digits, literal_column("''"), type_=Text)
    fraction = func.coalesce(literal_column("'.'", Text).concat(micro), literal_column("''"))
    return whole.concat(fraction).concat(literal_column("'Z'", Text))
