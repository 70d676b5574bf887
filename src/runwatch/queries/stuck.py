"""Stuck layer runs' SQL: the recent durations, the stuck condition, counts and running runs.

The thresholds are decided in `services/stuck.py` and come here as values
(seconds for every layer, and the layers whose threshold differs); a stuck
run is one still running that started more than its threshold before now.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal,
    literal_column,
    null,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.db.tables import layer_runs, running_layer_runs
from runwatch.db.types import UtcDateTime
from runwatch.queries.durations import (
    BinCounts,
    Histograms,
    add_raw_duration,
    window_histograms,
)
from runwatch.queries.segment_cache import (
    MORE_PARTS,
    NO_CACHE,
    RawQuery,
    RollupCache,
    WindowPlan,
    plan_window,
    read_head,
)
from runwatch.queries.statements import STATEMENTS

t = layer_runs
RECENT = timedelta(days=7)
# As a literal, so that both databases see that it implies the running runs' index.
RUNNING = t.c.status == literal_column("'running'")
# The running runs, through that index: what counts and lists them by layer reads.
rt = running_layer_runs
ONLY_RUNNING = rt.c.status == literal_column("'running'")


def recent_window(now: datetime) -> WindowPlan:
    """The window the thresholds come from: the last 7 days."""
    return plan_window(now - RECENT, None, now=now, monthly=False)


def durations_query(layer_name: str | None) -> RawQuery:
    """The raw runs with a duration, per layer (of one layer, or of all)."""
    return RawQuery(
        shape=("durations", layer_name is not None),
        columns=lambda: (t.c.layer_name, t.c.duration_seconds),
        started_at=lambda: t.c.started_at,
        where=lambda: [
            t.c.duration_seconds.is_not(None),
            *([] if layer_name is None else [t.c.layer_name == bindparam("layer_name")]),
        ],
        params={} if layer_name is None else {"layer_name": layer_name},
    )


async def recent_durations(
    conn: AsyncConnection,
    *,
    now: datetime,
    layer_name: str | None = None,
    cache: RollupCache = NO_CACHE,
) -> tuple[Histograms, BinCounts]:
    """The durations of the runs completed in the last 7 days, per layer (of one, or of all).

    The stable segments' histograms, and the counts of the raw runs around them.
    """
    plan = recent_window(now)
    head = await read_head(
        conn, stable=plan.stable, raw=plan.raw, query=durations_query(layer_name)
    )
    (histograms,) = await window_histograms(
        conn, cache, windows=[plan], changes=head.changes, layer_name=layer_name, by_version=False
    )
    extra: BinCounts = {}
    for _part, _changes, _moment, layer, duration in plan.raw_rows(head.rows):
        add_raw_duration(extra, (layer, ""), duration)
    return histograms, extra


def stuck_condition(
    default: float, named: Sequence[tuple[str, float]], now: datetime
) -> ColumnElement[bool]:
    """The WHERE clause that picks the stuck runs, with the thresholds as values.

    `default` is the threshold in seconds of every layer not in `named`, a
    list of (layer, seconds).
    """

    def before(seconds: float) -> ColumnElement[Any]:
        return literal(now - timedelta(seconds=seconds), UtcDateTime)

    latest: ColumnElement[Any] = before(default)
    if named:
        latest = case(*((t.c.layer_name == name, before(s)) for name, s in named), else_=latest)
    return and_(RUNNING, t.c.started_at < latest)


def _count_statement(cases: int, has_layer: bool) -> Select[Any]:
    moment = UtcDateTime()
    default = bindparam("before_default", type_=moment)
    before = (
        case(
            *(
                (rt.c.layer_name == bindparam(f"layer{i}"), bindparam(f"before{i}", type_=moment))
                for i in range(cases)
            ),
            else_=default,
        )
        if cases
        else default
    )
    query = select(rt.c.layer_name, func.count()).where(
        ONLY_RUNNING,
        rt.c.started_at < bindparam("latest", type_=moment),
        rt.c.started_at < before,
    )
    if has_layer:
        query = query.where(rt.c.layer_name == bindparam("layer_name"))
    return query.group_by(rt.c.layer_name)


async def stuck_counts(
    conn: AsyncConnection,
    *,
    default: float,
    named: Sequence[tuple[str, float]],
    now: datetime,
    layer_name: str | None = None,
) -> dict[str, int]:
    """Stuck runs per layer, whenever they started, in one statement (thresholds as above)."""
    shape: Hashable = ("stuck_counts", len(named), layer_name is not None, conn.dialect.name)
    statement = STATEMENTS.get(shape, lambda: _count_statement(len(named), layer_name is not None))
    params: dict[str, Any] = {
        "before_default": now - timedelta(seconds=default),
        "latest": now - timedelta(seconds=min([default, *(s for _, s in named)])),
    }
    for i, (name, seconds) in enumerate(named):
        params[f"layer{i}"] = name
        params[f"before{i}"] = now - timedelta(seconds=seconds)
    if layer_name is not None:
        params["layer_name"] = layer_name
    return {name: int(n) for name, n in await conn.execute(statement, params)}


# Running runs are read with a summary's raw runs: those that started up to a day
# before the lowest threshold any layer can have one by one, older ones counted per
# layer (they are stuck unless a layer's threshold is over a day longer).
RUNNING_ONE_BY_ONE = timedelta(days=1)
OLDER_RUNNING, RECENT_RUNNING = MORE_PARTS, MORE_PARTS - 1


def running_parts(
    layer_name: str | None,
) -> Callable[[Sequence[ColumnElement[Any]]], list[Select[Any]]]:
    """`RawQuery.more` for the running runs, given raw columns whose first is `layer_name`."""

    def build(columns: Sequence[ColumnElement[Any]]) -> list[Select[Any]]:
        assert columns[0] is t.c.layer_name
        padding = [cast(null(), c.type) for c in columns[1:]]
        where = [ONLY_RUNNING]
        if layer_name is not None:
            where.append(rt.c.layer_name == bindparam("layer_name"))
        before = bindparam("running_before", type_=UtcDateTime())
        until = bindparam("running_until", type_=UtcDateTime())
        older = (
            select(
                literal(OLDER_RUNNING),
                cast(func.count(), BigInteger),
                cast(null(), UtcDateTime()),
                rt.c.layer_name,
                *padding,
            )
            .where(*where, rt.c.started_at < before)
            .group_by(rt.c.layer_name)
        )
        recent = select(
            literal(RECENT_RUNNING),
            cast(null(), BigInteger),
            rt.c.started_at,
            rt.c.layer_name,
            *padding,
        ).where(*where, rt.c.started_at >= before, rt.c.started_at < until)
        return [older, recent]

    return build


def running_params(lowest_threshold: float, now: datetime) -> dict[str, datetime]:
    """The values `running_parts` needs; no layer's threshold is below `lowest_threshold`."""
    lowest = now - timedelta(seconds=lowest_threshold)
    return {"running_before": lowest - RUNNING_ONE_BY_ONE, "running_until": lowest}


@dataclass(frozen=True)
class RunningRuns:
    """What `running_parts` read: the running runs per layer, older ones counted.

    `older` counts the runs that started before `running_before`; `recent`
    has each one that started from then until `running_until`.
    """

    older: dict[str, int]
    recent: list[tuple[str, datetime]]


def fold_running(rows: Iterable[Sequence[Any]]) -> RunningRuns:
    """The rows of `running_parts`, folded."""
    older: dict[str, int] = {}
    recent: list[tuple[str, datetime]] = []
    for part, count, started, layer, *_ in rows:
        if part == OLDER_RUNNING:
            older[layer] = int(count)
        elif part == RECENT_RUNNING:
            recent.append((layer, started))
    return RunningRuns(older, recent)
