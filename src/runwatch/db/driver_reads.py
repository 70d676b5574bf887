"""Hot reads run on the driver's own connection: compiled once, no SQLAlchemy execution per call.

`Dialect.fetch_all` and `Dialect.fetch_rows` (dialect.py) run the statements
kept by shape this way. A statement is compiled once into a `DriverPlan`: its
SQL, the order and conversion of its parameters, and (where the driver's values
are not yet what SQLAlchemy would return, on SQLite) the conversion of its
result columns. Each call then costs one driver call: asyncpg's prepared
statement, or aiosqlite's `execute_fetchall`, one trip to its thread where
SQLAlchemy's adapter makes four (cursor, execute, fetch, close).

The statement is still reported to `before_cursor_execute` listeners, so
statement counts stay true. Any failure on this path runs the statement again
through SQLAlchemy, which raises its usual errors and invalidates a dead
connection (the read is then retried on a fresh one, see api/reads.py); the
statement was then sent twice, and is counted twice, so a path that always
failed would show in the statement-count tests, and it is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import CompoundSelect, Select
from sqlalchemy.ext.asyncio import AsyncConnection

DRIVER_INFO_KEY = "runwatch_driver_connection"

logger = logging.getLogger("runwatch")

Query = Select[Any] | CompoundSelect
# Runs a plan's SQL with its positional arguments on a driver connection; the rows.
DriverFetch = Callable[[Any, str, list[Any]], Awaitable[Sequence[Sequence[Any]]]]


class DriverPlan:
    """A statement compiled for the driver: its SQL, its parameters' order and conversion,
    its result columns' names and (with `convert_results`) their conversion."""

    def __init__(self, query: Query, sa_dialect: Any, *, convert_results: bool) -> None:
        compiled = query.compile(dialect=sa_dialect)
        self.compiled = compiled
        self.sql = compiled.string
        self.names = tuple(compiled.positiontup or ())
        # The dialect's own form of each type converts as SQLAlchemy would (on
        # SQLite, a timestamp to its fixed-width text).
        self.processors = [
            compiled.binds[name].type.dialect_impl(sa_dialect).bind_processor(sa_dialect)
            if name in compiled.binds
            else None
            for name in self.names
        ]
        columns = list(query.selected_columns)
        self.keys = tuple(column.key for column in columns)
        self.converters: list[tuple[int, Callable[[Any], Any]]] = []
        if convert_results:
            for i, column in enumerate(columns):
                process = column.type.dialect_impl(sa_dialect).result_processor(sa_dialect, None)
                if process is not None:
                    self.converters.append((i, process))

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

    def convert(self, rows: Sequence[Sequence[Any]]) -> Sequence[Sequence[Any]]:
        """The driver's rows with the values SQLAlchemy would give (timestamps, JSON, booleans)."""
        if not self.converters:
            return rows
        out = []
        for row in rows:
            values = list(row)
            for i, process in self.converters:
                values[i] = process(values[i])
            out.append(values)
        return out


class DriverPlans:
    """`DriverPlan`s of the statements kept by shape, by identity; bounded."""

    def __init__(self, *, convert_results: bool, maxsize: int = 2048) -> None:
        self.convert_results = convert_results
        self.maxsize = maxsize
        # id → (the statement, its plan): the statement is kept so that an id
        # reused by another object is never taken for it.
        self._by_id: dict[int, tuple[Query, DriverPlan | None]] = {}

    def get(self, query: Query, sa_dialect: Any) -> DriverPlan | None:
        known = self._by_id.get(id(query))
        if known is not None and known[0] is query:
            return known[1]
        if len(self._by_id) >= self.maxsize:
            self._by_id.clear()
        plan: DriverPlan | None = DriverPlan(
            query, sa_dialect, convert_results=self.convert_results
        )
        if not plan.usable:
            plan = None
        self._by_id[id(query)] = (query, plan)
        return plan

    async def rows(
        self,
        conn: AsyncConnection,
        query: Query,
        params: Mapping[str, Any],
        fetch: DriverFetch,
    ) -> tuple[DriverPlan, Sequence[Sequence[Any]]] | None:
        """The plan and the driver's rows of a read, or None to run it through SQLAlchemy."""
        plan = self.get(query, conn.dialect)
        sync = conn.sync_connection
        if plan is None or sync is None:
            return None
        args = plan.arguments(params)
        try:
            driver = conn.info.get(DRIVER_INFO_KEY)
            if driver is None:
                driver = (await conn.get_raw_connection()).driver_connection
                conn.info[DRIVER_INFO_KEY] = driver
            sync.dispatch.before_cursor_execute(sync, None, plan.sql, args, None, False)
            return plan, await fetch(driver, plan.sql, args)
        except Exception as exc:
            logger.info("read on the driver failed (%s); running it again", type(exc).__name__)
            conn.info.pop(DRIVER_INFO_KEY, None)
            return None
