"""Aggregates of a window's whole rollup buckets, read once and reused while they hold.

Every write of a layer run adds one to `layer_run_bucket_changes` for the
hour, day and month its runs started in, in the writer's transaction; a
rebuild adds one to every bucket. The sum of those counters over a segment of
whole buckets therefore changes whenever anything the rollups hold for it
does, and an aggregate of the segment read earlier, filed under the sum, is
exactly what reading the rollups again would give while the sum is the same.

A read splits its window (`plan_window`) into:

- *stable* segments: whole hours, days and months up to the start of the
  current hour, as `buckets.plan_segments` covers them, with the last complete
  hour and the day before it each on their own (runs that started then are
  still finishing; a write there should not make the rest be read again).
  Their aggregates are kept in a `RollupCache` per process, keyed by what was
  asked, the segment and its counter sum;
- *raw* ranges: the partial hour at the start, and everything from the start
  of the current hour on (the part that changes with nearly every write),
  read from the raw rows.

`read_head` reads the counters of the stable segments and the raw rows in one
statement, before any rollup is read, so that an aggregate is never filed
under counters newer than itself. Rollups of the stable segments not cached
are then read in one statement (`merged_parts`).

A raw range that lies within one hour (the partial first hour) is covered by
that hour's counter as well. A reader that kept what it made of the range's
rows can name the counter it was made under (`read_head`'s `known`): the rows
are then sent only if the counter moved, tested in the same statement that
reads it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    CompoundSelect,
    Row,
    Select,
    bindparam,
    cast,
    func,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.db.dialect import dialect_of
from runwatch.db.tables import PURGED_BEFORE_KEY, layer_run_bucket_changes, runwatch_state
from runwatch.db.types import UtcDateTime, as_utc
from runwatch.queries.buckets import (
    DAY,
    HOUR,
    Segment,
    ceil_hour,
    floor_day,
    floor_hour,
    plan_segments,
)
from runwatch.queries.statements import STATEMENTS

bc = layer_run_bucket_changes


class RollupCache:
    """Aggregates by key, least recently used first out, within a budget of rows.

    An entry's weight is the number of rows it was made from (at least 1);
    `max_rows` 0 keeps nothing.
    """

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._rows = 0

    def get(self, key: Hashable) -> Any | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: Hashable, value: Any, rows: int) -> None:
        weight = max(1, rows)
        if weight > self.max_rows or key in self._entries:
            return
        self._entries[key] = (value, weight)
        self._rows += weight
        while self._rows > self.max_rows:
            _, (_, old) = self._entries.popitem(last=False)
            self._rows -= old

    def replace(self, key: Hashable, value: Any, rows: int) -> None:
        """`put`, over what `key` held."""
        old = self._entries.pop(key, None)
        if old is not None:
            self._rows -= old[1]
        self.put(key, value, rows)

    def __len__(self) -> int:
        return len(self._entries)


NO_CACHE = RollupCache(0)


@dataclass(frozen=True)
class WindowPlan:
    """A window in stable rollup segments and raw ranges (see the module docstring)."""

    stable: tuple[Segment, ...]
    raw: tuple[Segment, ...]

    def raw_rows(self, rows: Mapping[Segment, list[Sequence[Any]]]) -> Iterator[Sequence[Any]]:
        """The rows of this window's raw ranges, from what `read_head` read."""
        for segment in self.raw:
            yield from rows[segment]


def plan_window(
    since: datetime, until: datetime | None, *, now: datetime, monthly: bool = True
) -> WindowPlan:
    """Cover `[since, until)` (None: unbounded) exactly; `monthly`: the rollups have months.

    A plan is immutable and depends only on the instants given, once in UTC
    (hours and days are cut in UTC), and a rolling window's `now` moves in
    steps: the plans last made are kept.
    """
    return _plan_window(
        as_utc(since), None if until is None else as_utc(until), as_utc(now), monthly
    )


@lru_cache(maxsize=256)
def _plan_window(
    since: datetime, until: datetime | None, now: datetime, monthly: bool
) -> WindowPlan:
    if until is not None and until <= since:
        return WindowPlan((), ())
    start = ceil_hour(since)
    edge = None if until is None else floor_hour(until)
    if edge is not None and start >= edge:
        return WindowPlan((), (Segment("raw", since, until),))
    raw = [Segment("raw", since, start)] if since < start else []
    live = floor_hour(now)
    stable_end = live if edge is None else min(live, edge)
    stable: list[Segment] = []
    if start < stable_end:
        cut = max(start, min(live - HOUR, stable_end))
        # The day before the last complete hour is a segment of its own too:
        # runs that started then may still finish, and the days before it are
        # the costly part to read again.
        recent_day = floor_day(cut) - DAY
        if start < recent_day:
            stable += plan_segments(start, recent_day)
            stable += plan_segments(recent_day, cut)
        elif start < cut:
            stable += plan_segments(start, cut)
        if cut < stable_end:
            stable.append(Segment("hour", cut, stable_end))
    rest = max(start, stable_end)
    if until is None or rest < until:
        raw.append(Segment("raw", rest, until))
    if not monthly:
        stable = [Segment("day", s.start, s.end) if s.source == "month" else s for s in stable]
    return WindowPlan(tuple(stable), tuple(raw))


def hour_of(segment: Segment) -> Segment | None:
    """The whole hour a bounded range lies within, if it lies within one."""
    if segment.start is None or segment.end is None:
        return None
    hour = floor_hour(segment.start)
    return Segment("hour", hour, hour + HOUR) if segment.end <= hour + HOUR else None


def segment_bounds(column: Any, segment: Segment) -> list[ColumnElement[bool]]:
    """`start <= column < end` for the ends a segment has, their values bound."""
    out = []
    if segment.start is not None:
        out.append(column >= segment.start)
    if segment.end is not None:
        out.append(column < segment.end)
    return out


def _range(column: Any, prefix: str, has_start: bool, has_end: bool) -> list[ColumnElement[bool]]:
    out = []
    if has_start:
        out.append(column >= bindparam(f"{prefix}_start"))
    if has_end:
        out.append(column < bindparam(f"{prefix}_end"))
    return out


def _range_values(prefix: str, segment: Segment) -> dict[str, datetime]:
    out = {}
    if segment.start is not None:
        out[f"{prefix}_start"] = segment.start
    if segment.end is not None:
        out[f"{prefix}_end"] = segment.end
    return out


Shape = tuple[tuple[str, bool, bool], ...]


def _shape(segments: Sequence[Segment]) -> Shape:
    return tuple((s.source, s.start is not None, s.end is not None) for s in segments)


@dataclass(frozen=True)
class RawQuery:
    """The raw rows a read needs: their columns, their start time, and the read's filters.

    `shape` names the statement (the columns and which filters are present) so
    that it is built once; `where` uses bind parameters whose values are in
    `params`.
    """

    shape: Hashable
    columns: Callable[[], Sequence[ColumnElement[Any]]]
    started_at: Callable[[], ColumnElement[Any]]
    where: Callable[[], Sequence[ColumnElement[bool]]]
    params: dict[str, Any]
    # More rows for the same statement: selects of (`part`, `changes`, `moment`,
    # then the columns above), each `part` at most MORE_PARTS, given those columns.
    more: Callable[[Sequence[ColumnElement[Any]]], Sequence[Select[Any]]] | None = None


HORIZON_PART = -(2**31)  # the `part` of the row that carries the purge horizon
MORE_PARTS = -(2**30)  # `part`s at most this are the query's own (`RawQuery.more`)


def _hour_moved(prefix: str) -> ColumnElement[bool]:
    """The change counter of the hour `:{prefix}_hour` is not `:{prefix}_known`."""
    counter = (
        select(bc.c.changes)
        .where(bc.c.grain == literal("hour"), bc.c.bucket_start == bindparam(f"{prefix}_hour"))
        .scalar_subquery()
    )
    return func.coalesce(counter, 0) != bindparam(f"{prefix}_known", type_=BigInteger)


def _head_statement(
    query: RawQuery, stable: Shape, raw: Shape, checked: tuple[bool, ...], horizon: bool
) -> Any:
    columns = list(query.columns())
    started = query.started_at()
    moment = UtcDateTime()
    ranges = [
        select(
            literal(-1 - i).label("part"),
            cast(null(), BigInteger).label("changes"),
            cast(null(), moment).label("moment"),
            *columns,
        )
        .where(*_range(started, f"raw{i}", has_start, has_end))
        .where(*query.where())
        .where(*([_hour_moved(f"raw{i}")] if check else []))
        for i, ((_source, has_start, has_end), check) in enumerate(zip(raw, checked, strict=True))
    ]
    padding = [cast(null(), c.type) for c in columns]
    counters = [
        select(
            literal(i),
            cast(func.coalesce(func.sum(bc.c.changes), 0), BigInteger),
            cast(null(), moment),
            *padding,
        ).where(bc.c.grain == literal(source), *_range(bc.c.bucket_start, f"seg{i}", *bounds))
        for i, (source, *bounds) in enumerate(stable)
    ]
    state = runwatch_state
    purged = [
        select(literal(HORIZON_PART), cast(null(), BigInteger), state.c.moment, *padding).where(
            state.c.key == PURGED_BEFORE_KEY
        )
    ]
    more = [] if query.more is None else query.more(columns)
    return union_all(*ranges, *counters, *(purged if horizon else []), *more)


@dataclass
class Head:
    """What `read_head` read: counter sums, raw rows by range, and the purge horizon if asked.

    Rows are read by position (the driver's own records on PostgreSQL).
    """

    changes: dict[Segment, int]
    rows: dict[Segment, list[Sequence[Any]]]
    purged_before: datetime | None = None
    more: list[Sequence[Any]] = field(default_factory=list)  # the rows of `RawQuery.more`


async def read_head(
    conn: AsyncConnection,
    *,
    stable: Sequence[Segment],
    raw: Sequence[Segment],
    query: RawQuery,
    purge_horizon: bool = False,
    known: Mapping[Segment, int | None] | None = None,
) -> Head:
    """The counter sum of each `stable` segment and the raw rows of each `raw` range, in
    one statement; with `purge_horizon`, the layer-run purge horizon as well.

    `known` maps raw ranges within one hour (`hour_of`) to that hour's counter
    as the caller last saw it (None: never): such a range's rows are read
    only if the counter is another now, and the counter comes back in
    `changes` under the hour either way.

    Rows come with three leading columns (`part`, `changes`, `moment`) before
    `query`'s, and are read by position only.
    """
    known = known or {}
    raw = list(dict.fromkeys(raw))
    hours = {segment: hour_of(segment) for segment in raw if segment in known}
    stable = list(dict.fromkeys([*stable, *(h for h in hours.values() if h is not None)]))
    if not stable and not raw and not purge_horizon:
        return Head({}, {})  # an empty window
    stable_shape, raw_shape = _shape(stable), _shape(raw)
    checked = tuple(hours.get(segment) is not None for segment in raw)
    statement = STATEMENTS.get(
        (
            "segment_head",
            query.shape,
            stable_shape,
            raw_shape,
            checked,
            purge_horizon,
            conn.dialect.name,
        ),
        lambda: _head_statement(query, stable_shape, raw_shape, checked, purge_horizon),
    )
    params = dict(query.params)
    for i, segment in enumerate(stable):
        params.update(_range_values(f"seg{i}", segment))
    for i, segment in enumerate(raw):
        params.update(_range_values(f"raw{i}", segment))
        hour = hours.get(segment)
        if hour is not None:
            params[f"raw{i}_hour"] = hour.start
            seen = known[segment]
            params[f"raw{i}_known"] = -1 if seen is None else seen  # counters are never < 0
    head = Head(dict.fromkeys(stable, 0), {segment: [] for segment in raw})
    for row in await dialect_of(conn).fetch_rows(conn, statement, params):
        part = row[0]
        if part >= 0:
            head.changes[stable[part]] = int(row[1] or 0)
        elif part == HORIZON_PART:
            head.purged_before = row[2]
        elif part <= MORE_PARTS:
            head.more.append(row)
        else:
            head.rows[raw[-1 - part]].append(row)
    return head


def _tagged(query: Select[Any] | CompoundSelect, tag: int) -> Select[Any]:
    """The query's rows with `tag` as a last column."""
    if isinstance(query, Select):
        return query.add_columns(literal(tag).label("segment"))
    rows = query.subquery()
    return select(*rows.c, literal(tag).label("segment"))


async def merged_parts(
    conn: AsyncConnection,
    cache: RollupCache,
    *,
    kind: Hashable,
    windows: Sequence[Sequence[Segment]],
    changes: Mapping[Segment, int],
    part: Callable[[Segment], Select[Any] | CompoundSelect],
    fold: Callable[[list[Row[Any]]], Any],
    merge: Callable[[list[Any]], tuple[Any, int]],
) -> list[Any]:
    """For each window's stable segments, the merge of their aggregates.

    `kind` names what is asked (the aggregate and its filters). A merge is
    cached under the segments and their counter sums; a segment's aggregate
    likewise. The aggregates not cached, of every window, are read in one
    statement: `part(segment)` selects a segment's rows, `fold(rows)` makes
    its aggregate, `merge(aggregates)` gives the merge and its weight.
    """
    keys = [("merged", kind, tuple((s, changes[s]) for s in segments)) for segments in windows]
    out = [cache.get(k) for k in keys]
    unmerged = [segs for value, segs in zip(out, windows, strict=True) if value is None]
    wanted = list(dict.fromkeys(s for segs in unmerged for s in segs))
    aggregates: dict[Segment, Any] = {}
    missing = []
    for segment in wanted:
        found = cache.get(("part", kind, segment, changes[segment]))
        if found is None:
            missing.append(segment)
        else:
            aggregates[segment] = found
    if missing:
        union = union_all(*(_tagged(part(s), j) for j, s in enumerate(missing)))
        rows: list[list[Row[Any]]] = [[] for _ in missing]
        for row in await conn.execute(union):
            rows[row[-1]].append(row)
        for segment, got in zip(missing, rows, strict=True):
            aggregates[segment] = fold(got)
            cache.put(("part", kind, segment, changes[segment]), aggregates[segment], len(got))
    for i, segments in enumerate(windows):
        if out[i] is None:
            out[i], weight = merge([aggregates[s] for s in segments])
            cache.put(keys[i], out[i], weight)
    return out
