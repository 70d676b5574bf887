"""asyncpg's side of PostgreSQL: reads compiled once for the driver, rows sent as arrays.

Used by `PostgresDialect` (dialect.py); nothing here knows SQLite.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Double,
    Float,
    Integer,
    Numeric,
    Select,
    Table,
    TypeDecorator,
)

DRIVER_INFO_KEY = "runwatch_driver_connection"


class DriverPlan:
    """A statement compiled for asyncpg: its SQL and how to order and convert its parameters."""

    def __init__(self, query: Select[Any], sa_dialect: Any) -> None:
        compiled = query.compile(dialect=sa_dialect)
        self.compiled = compiled
        self.sql = compiled.string
        self.names = tuple(compiled.positiontup or ())
        self.processors = [
            compiled.binds[name].type.bind_processor(sa_dialect) if name in compiled.binds else None
            for name in self.names
        ]

    @property
    def usable(self) -> bool:
        # Expanding parameters (IN lists) are rendered per call: not for this path.
        return "POSTCOMPILE" not in self.sql

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        values = self.compiled.construct_params(dict(params))
        return [
            value if process is None else process(value)
            for value, process in zip((values[n] for n in self.names), self.processors, strict=True)
        ]


class DriverPlans:
    """`DriverPlan`s of the statements kept by shape, by identity; bounded."""

    def __init__(self, maxsize: int = 2048) -> None:
        self.maxsize = maxsize
        # id → (the statement, its plan): the statement is kept so that an id
        # reused by another object is never taken for it.
        self._by_id: dict[int, tuple[Select[Any], DriverPlan | None]] = {}

    def get(self, query: Select[Any], sa_dialect: Any) -> DriverPlan | None:
        known = self._by_id.get(id(query))
        if known is not None and known[0] is query:
            return known[1]
        if len(self._by_id) >= self.maxsize:
            self._by_id.clear()
        plan: DriverPlan | None = DriverPlan(query, sa_dialect)
        if not plan.usable:
            plan = None
        self._by_id[id(query)] = (query, plan)
        return plan


# --- rows as one array per column, for many-row statements ----------------------


def array_type(column: Any) -> str:
    """The PostgreSQL array type that carries a column's values through `unnest`."""
    type_ = column.type
    type_ = getattr(type_, "_variant_mapping", {}).get("postgresql", type_)
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
    return "text[]"  # JSON is encoded here and cast to jsonb in the statement


def unnest_insert(table: Table, columns: Sequence[str]) -> str:
    arrays = [f"${i}::{array_type(table.c[name])}" for i, name in enumerate(columns, start=1)]
    selected = [
        f"v.{name}::jsonb" if isinstance(table.c[name].type, JSON) else f"v.{name}"
        for name in columns
    ]
    return (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"SELECT {', '.join(selected)} FROM unnest({', '.join(arrays)}) AS v({', '.join(columns)})"
    )


def column_arrays(table: Table, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> tuple:
    out = []
    for name in columns:
        if isinstance(table.c[name].type, JSON):
            out.append([None if r[name] is None else json.dumps(r[name]) for r in rows])
        else:
            out.append([r[name] for r in rows])
    return tuple(out)
