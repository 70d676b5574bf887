"""Error groups: `GET /runs/errors` from the error rollups, and the runs of one group.

A window `[since, until)` is read as the run rollups are (see rollups.py):
whole days in the middle, whole hours towards the edges, and the occurrence
rows of the partial hours at either end, so every count is exact.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, literal, select, type_coerce, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.db.tables import (
    error_fingerprints,
    layer_run_error_rollups,
    layer_run_errors,
    layer_runs,
)
from runwatch.db.types import UtcDateTime, as_utc
from runwatch.queries.pagination import SortSpec, decode_cursor, encode_cursor
from runwatch.queries.rollups import Segment, floor_day, plan_segments

e = layer_run_errors
er = layer_run_error_rollups
t = layer_runs

ERROR_GROUP_SORTS = ("errors", "runs", "last_seen")
SAMPLE_RUNS = 5


@dataclass(frozen=True)
class ErrorFilter:
    """What the error groups can be narrowed by: the filters of `GET /runs`, and the hash."""

    since: datetime
    until: datetime | None = None
    layer_name: str | None = None
    statuses: tuple[str, ...] = ()
    model_name: str | None = None
    layer_hash: str | None = None
    fingerprints: tuple[str, ...] = field(default=())


def window_segments(since: datetime, until: datetime | None) -> list[Segment]:
    """The window's parts; whole months are read as their days (there is no monthly grain)."""
    return [
        Segment("day", s.start, s.end) if s.source == "month" else s
        for s in plan_segments(since, until)
    ]


def _dims(table: Any, f: ErrorFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if f.layer_name is not None:
        conditions.append(table.c.layer_name == f.layer_name)
    if f.statuses:
        conditions.append(table.c.status.in_(f.statuses))
    if f.model_name is not None:
        conditions.append(table.c.model_name == f.model_name)
    if f.layer_hash is not None:
        conditions.append(table.c.layer_hash == f.layer_hash)
    if f.fingerprints:
        conditions.append(table.c.fingerprint.in_(f.fingerprints))
    return conditions


def _bounds(column: Any, segment: Segment) -> list[ColumnElement[bool]]:
    out = []
    if segment.start is not None:
        out.append(column >= segment.start)
    if segment.end is not None:
        out.append(column < segment.end)
    return out


def _group_part(segment: Segment, f: ErrorFilter) -> Any:
    if segment.source == "raw":
        return (
            select(
                e.c.fingerprint,
                e.c.layer_name,
                func.sum(e.c.errors).label("errors"),
                func.count().label("runs"),
                func.min(e.c.started_at).label("first_seen"),
                func.max(e.c.started_at).label("last_seen"),
            )
            .where(*_bounds(e.c.started_at, segment), *_dims(e, f))
            .group_by(e.c.fingerprint, e.c.layer_name)
        )
    return (
        select(
            er.c.fingerprint,
            er.c.layer_name,
            func.sum(er.c.errors).label("errors"),
            func.sum(er.c.runs).label("runs"),
            func.min(er.c.first_seen).label("first_seen"),
            func.max(er.c.last_seen).label("last_seen"),
        )
        .where(er.c.grain == literal(segment.source), *_bounds(er.c.bucket_start, segment))
        .where(*_dims(er, f))
        .group_by(er.c.fingerprint, er.c.layer_name)
    )


def _day_part(segment: Segment, f: ErrorFilter) -> Any:
    if segment.source == "raw":
        return select(
            e.c.fingerprint,
            e.c.started_at.label("moment"),
            e.c.errors.label("errors"),
            literal(1).label("runs"),
        ).where(*_bounds(e.c.started_at, segment), *_dims(e, f))
    return (
        select(
            er.c.fingerprint,
            er.c.bucket_start.label("moment"),
            func.sum(er.c.errors).label("errors"),
            func.sum(er.c.runs).label("runs"),
        )
        .where(er.c.grain == literal(segment.source), *_bounds(er.c.bucket_start, segment))
        .where(*_dims(er, f))
        .group_by(er.c.fingerprint, er.c.bucket_start)
    )


def _merged(parts: list[Any], keys: Sequence[str], sums: Sequence[str]) -> Any:
    union = union_all(*parts).subquery("parts")
    return select(
        *(union.c[k] for k in keys),
        *(func.sum(union.c[s]).label(s) for s in sums),
        type_coerce(func.min(union.c.first_seen), UtcDateTime).label("first_seen"),
        type_coerce(func.max(union.c.last_seen), UtcDateTime).label("last_seen"),
    ).group_by(*(union.c[k] for k in keys))


def _sort_spec(sort: str) -> SortSpec:
    column = er.c.last_seen if sort == "last_seen" else er.c[sort]
    return SortSpec(
        name=sort,
        column=column,
        id_column=er.c.fingerprint,
        descending=False,
        nullable=False,
        is_time=sort == "last_seen",
    )


async def list_error_groups(
    conn: AsyncConnection,
    *,
    filters: ErrorFilter,
    sort: str = "errors",
    limit: int = 20,
    cursor: str | None = None,
    now: datetime,
) -> dict[str, Any]:
    """One page of error groups, largest first by `sort`, with exact counts and daily counts."""
    segments = window_segments(filters.since, filters.until)
    groups: dict[str, dict[str, Any]] = {}
    if segments:
        query = _merged(
            [_group_part(s, filters) for s in segments],
            ("fingerprint", "layer_name"),
            ("errors", "runs"),
        )
        for row in await conn.execute(query):
            g = groups.setdefault(
                row.fingerprint,
                {
                    "fingerprint": row.fingerprint,
                    "errors": 0,
                    "runs": 0,
                    "layers": {},
                    "first_seen": row.first_seen,
                    "last_seen": row.last_seen,
                },
            )
            errors, runs = int(row.errors or 0), int(row.runs or 0)
            if runs <= 0:
                continue
            g["errors"] += errors
            g["runs"] += runs
            g["layers"][row.layer_name] = runs
            g["first_seen"] = min(g["first_seen"], as_utc(row.first_seen))
            g["last_seen"] = max(g["last_seen"], as_utc(row.last_seen))
    ranked = sorted(
        (g for g in groups.values() if g["runs"] > 0),
        key=lambda g: (g[sort], g["fingerprint"]),
        reverse=True,
    )
    spec = _sort_spec(sort)
    if cursor is not None:
        value, after = decode_cursor(cursor, spec)
        ranked = [g for g in ranked if (g[sort], g["fingerprint"]) < (value, after)]
    page, more = ranked[:limit], len(ranked) > limit
    next_cursor = encode_cursor(spec, page[-1][sort], page[-1]["fingerprint"]) if more else None
    if page:
        await _complete(conn, page, filters, segments, now)
    return {
        "since": filters.since,
        "until": filters.until,
        "total_groups": len([g for g in groups.values() if g["runs"] > 0]),
        "total_errors": sum(g["errors"] for g in groups.values()),
        "groups": page,
        "limit": limit,
        "next_cursor": next_cursor,
    }


async def _complete(
    conn: AsyncConnection,
    page: list[dict[str, Any]],
    filters: ErrorFilter,
    segments: list[Segment],
    now: datetime,
) -> None:
    """Add names, samples and daily counts to the groups of one page."""
    wanted = tuple(g["fingerprint"] for g in page)
    narrowed = ErrorFilter(**{**filters.__dict__, "fingerprints": wanted})
    names = {
        row.fingerprint: row
        for row in await conn.execute(
            select(error_fingerprints).where(error_fingerprints.c.fingerprint.in_(wanted))
        )
    }
    daily: dict[str, dict[datetime, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    union = union_all(*(_day_part(s, narrowed) for s in segments)).subquery("days")
    for row in await conn.execute(
        select(
            union.c.fingerprint,
            type_coerce(union.c.moment, UtcDateTime),
            union.c.errors,
            union.c.runs,
        )
    ):
        counts = daily[row[0]][floor_day(as_utc(row[1]))]
        counts[0] += int(row[2] or 0)
        counts[1] += int(row[3] or 0)
    samples = await _sample_run_ids(conn, narrowed, wanted)
    first_day = floor_day(filters.since)
    end = filters.until or now
    for g in page:
        name = names.get(g["fingerprint"])
        g["type"] = name.type if name is not None else ""
        g["message"] = name.template if name is not None else ""
        g["sample_message"] = name.sample_message if name is not None else ""
        g["layers"] = dict(sorted(g["layers"].items(), key=lambda kv: (-kv[1], kv[0])))
        g["sample_run_ids"] = samples.get(g["fingerprint"], [])
        by_day = daily[g["fingerprint"]]
        last_day = max([floor_day(end - timedelta(microseconds=1)), *by_day])
        g["days"] = [
            {"date": day.date().isoformat(), "errors": by_day[day][0], "runs": by_day[day][1]}
            for day in _days(first_day, last_day)
        ]


def _days(first: datetime, last: datetime) -> list[datetime]:
    out, day = [], first
    while day <= last:
        out.append(day)
        day += timedelta(days=1)
    return out


async def _sample_run_ids(
    conn: AsyncConnection, filters: ErrorFilter, wanted: tuple[str, ...]
) -> dict[str, list[str]]:
    window = _bounds(e.c.started_at, Segment("raw", filters.since, filters.until))
    plain = ErrorFilter(**{**filters.__dict__, "fingerprints": ()})
    parts = []
    for fingerprint in wanted:
        latest = (
            select(e.c.fingerprint, e.c.run_id, e.c.started_at)
            .where(e.c.fingerprint == fingerprint, *window, *_dims(e, plain))
            .order_by(e.c.started_at.desc(), e.c.run_id.desc())
            .limit(SAMPLE_RUNS)
            .subquery()
        )
        parts.append(select(latest.c.fingerprint, latest.c.run_id, latest.c.started_at))
    union = union_all(*parts).subquery("samples")
    out: dict[str, list[tuple[Any, str]]] = defaultdict(list)
    for row in await conn.execute(select(union.c.fingerprint, union.c.run_id, union.c.started_at)):
        out[row[0]].append((as_utc(_moment(row[2])), row[1]))
    return {fp: [run_id for _, run_id in sorted(rows, reverse=True)] for fp, rows in out.items()}


def _moment(value: Any) -> datetime:
    """A timestamp from a union on SQLite comes back as text."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def error_fingerprint_condition(fingerprint: str) -> ColumnElement[bool]:
    """Runs that have at least one error with this fingerprint."""
    return t.c.id.in_(select(e.c.run_id).where(e.c.fingerprint == fingerprint))
