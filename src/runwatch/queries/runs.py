"""The reads every kind of run shares: filters, sort, a page with its total, count, get by id.

Each function takes the kind's description (`runwatch.kinds.RunKind`): its
table, the column its time window bounds, its exact-match filter fields and
its list and detail columns. Statements are built once per (kind, shape) with
bind parameters (see `statements.py`); only the values change per request.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import ColumnElement, Select, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.db.dialect import dialect_of
from runwatch.errors import NotFound
from runwatch.metrics import query_timer
from runwatch.queries.pagination import Page, SortSpec, fetch_page
from runwatch.queries.statements import STATEMENTS

if TYPE_CHECKING:
    from runwatch.kinds import RunKind

# The count rides along in the page's statement: its parameters are prefixed.
COUNT_PREFIX = "count_"


@dataclass(frozen=True)
class RunFilter:
    """What a list of runs is narrowed by; empty means every run.

    `equal` holds exact values of the kind's filter fields (`layer_name`,
    `prompt_id`, …) as sorted `(field, value)` pairs; `since` (inclusive) and
    `until` (exclusive) bound the kind's time column.
    """

    equal: tuple[tuple[str, str], ...] = ()
    statuses: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def where(
        cls,
        *,
        statuses: tuple[str, ...] = (),
        since: datetime | None = None,
        until: datetime | None = None,
        **equal: str | None,
    ) -> RunFilter:
        """A filter from keyword values; a field given as None is not filtered on."""
        given = tuple(sorted((name, value) for name, value in equal.items() if value is not None))
        return cls(equal=given, statuses=statuses, since=since, until=until)

    def value(self, name: str) -> str | None:
        """The exact value `name` must have, or None when it is not filtered on."""
        for field, value in self.equal:
            if field == name:
                return value
        return None

    def only(self, *names: str) -> bool:
        """Whether no exact-match field other than `names` is filtered on."""
        return all(field in names for field, _ in self.equal)


def filter_shape(f: RunFilter) -> tuple[Any, ...]:
    """Which filters are given: with `filter_params`, what `run_conditions` needs."""
    return (
        tuple(name for name, _ in f.equal),
        min(len(f.statuses), 2),  # none, one (an equality the planner knows), or a list
        f.since is not None,
        f.until is not None,
    )


def filter_params(f: RunFilter, prefix: str = "") -> dict[str, Any]:
    """The values of `run_conditions`' bind parameters, by name."""
    values: dict[str, Any] = dict(f.equal)
    if len(f.statuses) == 1:
        values["status"] = f.statuses[0]
    elif f.statuses:
        values["statuses"] = list(f.statuses)
    if f.since is not None:
        values["since"] = f.since
    if f.until is not None:
        values["until"] = f.until
    return {prefix + name: value for name, value in values.items()}


def run_conditions(
    kind: RunKind, shape: tuple[Any, ...], prefix: str = ""
) -> list[ColumnElement[bool]]:
    """The WHERE clause of a filter shape, with bind parameters named as `filter_params`.

    The single source for list, count, export and stats. Time bounds are
    parameters, never computed in SQL, so the planner sees them and picks the
    time indexes.
    """
    t = kind.table
    fields, statuses, has_since, has_until = shape
    conditions: list[ColumnElement[bool]] = [
        t.c[name] == bindparam(prefix + name) for name in fields
    ]
    if statuses == 1:
        conditions.append(t.c.status == bindparam(prefix + "status"))
    elif statuses:
        conditions.append(t.c.status.in_(bindparam(prefix + "statuses", expanding=True)))
    time = t.c[kind.time_column]
    if has_since:
        conditions.append(time >= bindparam(prefix + "since"))
    if has_until:
        conditions.append(time < bindparam(prefix + "until"))
    return conditions


def sort_spec(kind: RunKind, token: str) -> SortSpec:
    """A `sort` parameter (already whitelisted by the schema) as a SortSpec."""
    name = token.lstrip("-")
    column = kind.table.c[name]
    return SortSpec(
        name=name,
        column=column,
        id_column=kind.table.c.id,
        descending=token.startswith("-"),
        nullable=column.nullable,
        is_time=name == kind.time_column,
    )


class RollupTotals(Protocol):
    """Exact totals from a kind's rollups, for the filters they are kept by."""

    def shape(
        self, filters: RunFilter, *, purge_horizon: datetime | None, prefix: str
    ) -> tuple[Hashable, dict[str, Any]] | None:
        """The count statement's shape and parameters; None when the rollups cannot answer."""
        ...

    def statement(self, shape: Hashable, *, prefix: str) -> Select[Any]:
        """The one-value count statement of a shape."""
        ...


def count_statement_shape(
    kind: RunKind, filters: RunFilter, *, purge_horizon: datetime | None = None
) -> tuple[Hashable, dict[str, Any]]:
    """The shape and parameters of the statement counting the runs that can be listed.

    From the kind's rollups where they cover the filters (constant cost
    however large the table), else a real count. The parameters are prefixed,
    so that the count can ride along in the page's statement.
    """
    if kind.rollup_totals is not None:
        found = kind.rollup_totals.shape(filters, purge_horizon=purge_horizon, prefix=COUNT_PREFIX)
        if found is not None:
            shape, params = found
            return ("rollups", shape), params
    return ("raw", filter_shape(filters)), filter_params(filters, COUNT_PREFIX)


def count_statement(kind: RunKind, shape: Hashable) -> Select[Any]:
    """The one-value count statement of a `count_statement_shape`."""
    assert isinstance(shape, tuple)
    source, inner = shape
    if source == "rollups":
        assert kind.rollup_totals is not None
        return kind.rollup_totals.statement(inner, prefix=COUNT_PREFIX)
    conditions = run_conditions(kind, inner, prefix=COUNT_PREFIX)
    return select(func.count()).select_from(kind.table).where(*conditions)


async def list_runs(
    conn: AsyncConnection,
    kind: RunKind,
    *,
    filters: RunFilter,
    sort: str | None = None,
    limit: int = 20,
    offset: int = 0,
    cursor: str | None = None,
    with_total: bool = False,
    purge_horizon: datetime | None = None,
) -> Page:
    """One page of the kind's list columns in `sort` order, by offset or after a keyset cursor.

    With `with_total`, `Page.total` is the exact count of the runs that can be
    listed (see `count_statement_shape`), fetched in the same statement.
    """
    with query_timer(kind.query_names.list):
        shape = filter_shape(filters)
        params = filter_params(filters)
        total_shape: Hashable = None
        if with_total:
            total_shape, total_params = count_statement_shape(
                kind, filters, purge_horizon=purge_horizon
            )
            params.update(total_params)

        def build() -> tuple[Select[Any], Select[Any] | None]:
            query = select(*kind.list_columns).where(*run_conditions(kind, shape))
            total = None if total_shape is None else count_statement(kind, total_shape)
            return query, total

        return await fetch_page(
            conn,
            shape=(kind.name, shape, total_shape),
            build=build,
            params=params,
            spec=sort_spec(kind, sort or kind.default_sort),
            limit=limit,
            offset=offset,
            cursor=cursor,
        )


async def count_runs(
    conn: AsyncConnection,
    kind: RunKind,
    *,
    filters: RunFilter,
    purge_horizon: datetime | None = None,
) -> int:
    """The exact number of runs matching `filters` that can still be listed."""
    with query_timer(kind.query_names.count):
        shape, params = count_statement_shape(kind, filters, purge_horizon=purge_horizon)
        query = STATEMENTS.get(("count", kind.name, shape), lambda: count_statement(kind, shape))
        return int((await conn.execute(query, params)).scalar_one())


def _by_id(kind: RunKind) -> Select[Any]:
    return select(*kind.detail_columns).where(kind.table.c.id == bindparam("run_id"))


async def find_run(conn: AsyncConnection, kind: RunKind, run_id: str) -> Mapping[str, Any] | None:
    """Every detail column of the run, or None when there is no such run."""
    with query_timer(kind.query_names.get):
        query = STATEMENTS.get(("by_id", kind.name), lambda: _by_id(kind))
        rows = await dialect_of(conn).fetch_all(conn, query, {"run_id": run_id})
        return rows[0] if rows else None


async def get_run(conn: AsyncConnection, kind: RunKind, run_id: str) -> Mapping[str, Any]:
    """Every detail column of the run; NotFound when there is none."""
    run = await find_run(conn, kind, run_id)
    if run is None:
        raise NotFound(f"No {kind.label} with id '{run_id}'.")
    return run
