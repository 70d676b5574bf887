"""Stuck layer runs: running for longer than their layer's threshold.

A layer's threshold is `RUNWATCH_STUCK_P95_MULTIPLE` (3) times the p95
duration of its runs completed in the last 7 days, and never less than
`RUNWATCH_STUCK_FLOOR_SECONDS` (1800); a layer with no such runs has the floor.
`RUNWATCH_STUCK_AFTER_SECONDS` replaces this with fixed thresholds, for every
layer or per layer. A stuck run is stuck since `started_at + threshold`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Row,
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

from runwatch.config import Settings
from runwatch.db.tables import layer_runs
from runwatch.db.types import UtcDateTime
from runwatch.queries.durations import (
    EMPTY,
    BinCounts,
    BinKey,
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


@dataclass(frozen=True)
class Thresholds:
    """Seconds after which a running run is stuck: per layer named, else `default`."""

    by_layer: dict[str, float]
    default: float

    def of(self, layer_name: str) -> float:
        return self.by_layer.get(layer_name, self.default)

    def exceptions(self) -> list[tuple[str, float]]:
        """The layers whose threshold is not the default, by name."""
        return sorted((name, s) for name, s in self.by_layer.items() if s != self.default)


def thresholds_from(
    histograms: Histograms,
    extra: Mapping[BinKey | None, dict[int, int]],
    *,
    layers: Iterable[str],
    settings: Settings,
) -> Thresholds:
    """The thresholds of `layers` (and of every layer with per-layer settings) from recent runs."""
    every, per_layer = settings.stuck_overrides
    out: dict[str, float] = dict(per_layer)
    for name in layers:
        if name in out:
            continue
        if every is not None:
            out[name] = every
            continue
        key = (name, "")
        p95 = histograms.get(key, EMPTY).percentiles(extra.get(key), (95,))[95]
        base = 0.0 if p95 is None else p95 * settings.stuck_p95_multiple
        out[name] = max(settings.stuck_floor_seconds, base)
    default = every if every is not None else settings.stuck_floor_seconds
    return Thresholds({name: float(s) for name, s in out.items()}, float(default))


def recent_layers(histograms: Histograms, extra: Mapping[BinKey | None, Any]) -> set[str]:
    """The layers with runs completed in the window (those whose threshold is not a default)."""
    return {key[0] for key in (*histograms, *extra) if key is not None}


async def recent_thresholds(
    conn: AsyncConnection,
    *,
    settings: Settings,
    now: datetime,
    layer_name: str | None = None,
    cache: RollupCache = NO_CACHE,
) -> Thresholds:
    """The thresholds of every layer with recent runs (or of one), from the last 7 days."""
    every, _per_layer = settings.stuck_overrides
    if every is not None:
        return thresholds_from({}, {}, layers=(), settings=settings)
    plan = recent_window(now)
    head = await read_head(
        conn, stable=plan.stable, raw=plan.raw, query=durations_query(layer_name)
    )
    (histograms,) = await window_histograms(
        conn, cache, windows=[plan], changes=head.changes, layer_name=layer_name, by_version=False
    )
    extra: BinCounts = {}
    for row in plan.raw_rows(head.rows):
        add_raw_duration(extra, (row.layer_name, ""), row.duration_seconds)
    layers = recent_layers(histograms, extra) if layer_name is None else {layer_name}
    return thresholds_from(histograms, extra, layers=layers, settings=settings)


async def stuck_thresholds(
    conn: AsyncConnection,
    *,
    layers: Iterable[str],
    settings: Settings,
    now: datetime,
    cache: RollupCache = NO_CACHE,
) -> dict[str, float]:
    """Seconds after which a running run of each layer is stuck."""
    layers = list(layers)
    every, per_layer = settings.stuck_overrides
    wanted = [name for name in layers if per_layer.get(name, every) is None]
    if not wanted:
        return {name: float(per_layer.get(name, every) or 0.0) for name in layers}
    found = await recent_thresholds(
        conn,
        settings=settings,
        now=now,
        layer_name=wanted[0] if len(wanted) == 1 else None,
        cache=cache,
    )
    return {name: found.of(name) for name in layers}


def stuck_condition(thresholds: Thresholds, now: datetime) -> ColumnElement[bool]:
    """The WHERE clause that picks the stuck runs, with the thresholds as values."""

    def before(seconds: float) -> ColumnElement[Any]:
        return literal(now - timedelta(seconds=seconds), UtcDateTime)

    named = thresholds.exceptions()
    latest: ColumnElement[Any] = before(thresholds.default)
    if named:
        latest = case(*((t.c.layer_name == name, before(s)) for name, s in named), else_=latest)
    return and_(RUNNING, t.c.started_at < latest)


async def stuck_runs_condition(
    conn: AsyncConnection,
    *,
    layer_name: str | None,
    settings: Settings,
    now: datetime,
    cache: RollupCache = NO_CACHE,
) -> ColumnElement[bool]:
    """The WHERE clause that picks the stuck runs (of one layer, or of all)."""
    found = await recent_thresholds(
        conn, settings=settings, now=now, layer_name=layer_name, cache=cache
    )
    return stuck_condition(found, now)


def _count_statement(cases: int, has_layer: bool) -> Select[Any]:
    moment = UtcDateTime()
    default = bindparam("before_default", type_=moment)
    before = (
        case(
            *(
                (t.c.layer_name == bindparam(f"layer{i}"), bindparam(f"before{i}", type_=moment))
                for i in range(cases)
            ),
            else_=default,
        )
        if cases
        else default
    )
    query = select(t.c.layer_name, func.count()).where(
        RUNNING,
        t.c.started_at < bindparam("latest", type_=moment),
        t.c.started_at < before,
    )
    if has_layer:
        query = query.where(t.c.layer_name == bindparam("layer_name"))
    return query.group_by(t.c.layer_name)


async def stuck_counts(
    conn: AsyncConnection,
    *,
    thresholds: Thresholds,
    now: datetime,
    layer_name: str | None = None,
) -> dict[str, int]:
    """Stuck runs per layer, whenever they started, in one statement."""
    named = thresholds.exceptions()
    shape: Hashable = ("stuck_counts", len(named), layer_name is not None, conn.dialect.name)
    statement = STATEMENTS.get(shape, lambda: _count_statement(len(named), layer_name is not None))
    params: dict[str, Any] = {
        "before_default": now - timedelta(seconds=thresholds.default),
        "latest": now - timedelta(seconds=min([thresholds.default, *(s for _, s in named)])),
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


def lowest_threshold(settings: Settings) -> float:
    """No layer's threshold is below this: p95-based ones are at least the floor."""
    every, per_layer = settings.stuck_overrides
    return min([settings.stuck_floor_seconds if every is None else every, *per_layer.values()])


def running_parts(
    layer_name: str | None,
) -> Callable[[Sequence[ColumnElement[Any]]], list[Select[Any]]]:
    """`RawQuery.more` for the running runs, given raw columns whose first is `layer_name`."""

    def build(columns: Sequence[ColumnElement[Any]]) -> list[Select[Any]]:
        assert columns[0] is t.c.layer_name
        padding = [cast(null(), c.type) for c in columns[1:]]
        where = [RUNNING]
        if layer_name is not None:
            where.append(t.c.layer_name == bindparam("layer_name"))
        before = bindparam("running_before", type_=UtcDateTime())
        until = bindparam("running_until", type_=UtcDateTime())
        older = (
            select(
                literal(OLDER_RUNNING),
                cast(func.count(), BigInteger),
                cast(null(), UtcDateTime()),
                t.c.layer_name,
                *padding,
            )
            .where(*where, t.c.started_at < before)
            .group_by(t.c.layer_name)
        )
        recent = select(
            literal(RECENT_RUNNING),
            cast(null(), BigInteger),
            t.c.started_at,
            t.c.layer_name,
            *padding,
        ).where(*where, t.c.started_at >= before, t.c.started_at < until)
        return [older, recent]

    return build


def running_params(settings: Settings, now: datetime) -> dict[str, datetime]:
    """The values `running_parts` needs."""
    lowest = now - timedelta(seconds=lowest_threshold(settings))
    return {"running_before": lowest - RUNNING_ONE_BY_ONE, "running_until": lowest}


def count_stuck(
    rows: Iterable[Row[Any]], thresholds: Thresholds, *, settings: Settings, now: datetime
) -> dict[str, int] | None:
    """Stuck runs per layer from what `running_parts` read; None if it cannot tell."""
    older: dict[str, int] = {}
    recent: list[tuple[str, datetime]] = []
    for part, count, started, layer, *_ in rows:
        if part == OLDER_RUNNING:
            older[layer] = int(count)
        elif part == RECENT_RUNNING:
            recent.append((layer, started))
    longest = lowest_threshold(settings) + RUNNING_ONE_BY_ONE.total_seconds()
    if any(thresholds.of(layer) > longest for layer in older):
        return None
    out = dict(older)
    for layer, started in recent:
        if started < now - timedelta(seconds=thresholds.of(layer)):
            out[layer] = out.get(layer, 0) + 1
    return out


async def stuck_state(
    conn: AsyncConnection,
    run: Mapping[str, Any],
    *,
    settings: Settings,
    now: datetime,
    cache: RollupCache = NO_CACHE,
) -> dict[str, Any]:
    """`stuck`, `stuck_since` and `stuck_threshold_seconds` of a running run; nothing otherwise."""
    if run["status"] != "running":
        return {}
    name = run["layer_name"]
    seconds = (
        await stuck_thresholds(conn, layers=[name], settings=settings, now=now, cache=cache)
    )[name]
    since = run["started_at"] + timedelta(seconds=seconds)
    stuck = since < now
    return {
        "stuck": stuck,
        "stuck_since": since if stuck else None,
        "stuck_threshold_seconds": seconds,
    }
