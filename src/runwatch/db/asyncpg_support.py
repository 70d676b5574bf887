"""asyncpg's side of PostgreSQL: reads compiled once for the driver, rows sent as one array.

Used by `PostgresDialect` (dialect.py); nothing here knows SQLite.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    JSON,
    Select,
    Table,
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


# --- rows as one array of table rows, for many-row statements ---------------------


def records_insert(table: Table, columns: Sequence[str]) -> str:
    """`INSERT … SELECT` of the rows in `$1`, an array of the table's own row type.

    The statement text is the same for any number of rows (prepared once per
    connection), and `unnest` yields the rows in their order. Columns left
    out of `columns` get their defaults: the values the array carries for
    them are never read.
    """
    names = ", ".join(columns)
    return f"INSERT INTO {table.name} ({names}) SELECT {names} FROM unnest($1::{table.name}[])"


def table_records(table: Table, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """Each row as a tuple of every column of `table`, in order (None where absent).

    The driver encodes an array of tuples in C with one type check per row; an
    array per column costs it a check per value, most of the Python time of a
    large batch. The tuples follow the table's column order, which must be the
    database's (tests/migrations checks it); JSON goes as its text.
    """
    names = [column.name for column in table.columns]
    records = [tuple(map(row.get, names)) for row in rows]
    json_at = [i for i, column in enumerate(table.columns) if isinstance(column.type, JSON)]
    if not json_at:
        return records
    encoded = []
    for record in records:
        values = list(record)
        for i in json_at:
            if values[i] is not None:
                values[i] = json.dumps(values[i])
        encoded.append(tuple(values))
    return encoded
