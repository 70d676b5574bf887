"""Error groups: `GET /runs/errors` from the error rollups.

A window is read as segment_cache plans it: the stable hours and days of
`layer_run_error_rollups` (reused while unchanged) and the occurrence rows of
the partial first hour and of the current hour on, so every count is exact.
The groups of one page are then named and given sample runs (`error_samples`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import (
    Row,
    Text,
    cast,
    func,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.db.tables import layer_run_error_rollups
from runwatch.db.types import UtcDateTime, as_utc
from runwatch.queries.buckets import Segment, floor_day
from runwatch.queries.error_filters import ErrorFilter, error_conditions, occurrences_query
from runwatch.queries.error_samples import fingerprint_names, sample_run_ids
from runwatch.queries.pagination import SortSpec, decode_cursor, encode_cursor
from runwatch.queries.segment_cache import (
    NO_CACHE,
    RollupCache,
    merged_parts,
    plan_window,
    read_head,
    segment_bounds,
)

er = layer_run_error_rollups

ERROR_GROUP_SORTS = ("errors", "runs", "last_seen")

GROUP, DAY = 0, 1
NONE = (0, 0)


def _stable_part(segment: Segment, *, f: ErrorFilter) -> Any:
    """One stable segment: per (fingerprint, layer) its sums, and per (fingerprint, bucket)."""
    where = [
        er.c.grain == literal(segment.source),
        *segment_bounds(er.c.bucket_start, segment),
        *error_conditions(er, f),
    ]
    errors, runs = func.sum(er.c.errors), func.sum(er.c.runs)
    per_layer = (
        select(
            literal(GROUP).label("kind"),
            er.c.fingerprint,
            er.c.layer_name,
            cast(null(), UtcDateTime).label("bucket"),
            errors.label("errors"),
            runs.label("runs"),
            func.min(er.c.first_seen).label("first_seen"),
            func.max(er.c.last_seen).label("last_seen"),
        )
        .where(*where)
        .group_by(er.c.fingerprint, er.c.layer_name)
    )
    per_bucket = (
        select(
            literal(DAY),
            er.c.fingerprint,
            cast(null(), Text),
            er.c.bucket_start,
            errors,
            runs,
            cast(null(), UtcDateTime),
            cast(null(), UtcDateTime),
        )
        .where(*where)
        .group_by(er.c.fingerprint, er.c.bucket_start)
    )
    return union_all(per_layer, per_bucket)


# Per fingerprint and layer: [errors, runs, first seen, last seen].
Pairs = dict[str, dict[str, list[Any]]]
# Per fingerprint and UTC day: [errors, runs].
Days = dict[str, dict[datetime, list[int]]]


@dataclass
class ErrorCounts:
    """What a window's stable segments count, per fingerprint."""

    pairs: Pairs
    days: Days
    groups: dict[str, dict[str, Any]]


def _add_pair(pairs: Pairs, fp: str, layer: str, values: list[Any]) -> None:
    entry = pairs.setdefault(fp, {}).get(layer)
    if entry is None:
        pairs[fp][layer] = list(values)
        return
    entry[0] += values[0]
    entry[1] += values[1]
    if values[2] is not None:
        entry[2] = values[2] if entry[2] is None else min(entry[2], values[2])
    if values[3] is not None:
        entry[3] = values[3] if entry[3] is None else max(entry[3], values[3])


def _add_day(days: Days, fp: str, day: datetime, errors: int, runs: int) -> None:
    counts = days.setdefault(fp, {}).setdefault(day, [0, 0])
    counts[0] += errors
    counts[1] += runs


def _fold_errors(rows: list[Row[Any]]) -> tuple[Pairs, Days]:
    pairs: Pairs = {}
    days: Days = {}
    for kind, fp, layer, bucket, errors, runs, first, last, *_ in rows:
        if kind == GROUP:
            _add_pair(pairs, fp, layer, [int(errors or 0), int(runs or 0), first, last])
        else:
            _add_day(days, fp, floor_day(as_utc(bucket)), int(errors or 0), int(runs or 0))
    return pairs, days


def _group(fp: str, layers: Mapping[str, list[Any]]) -> dict[str, Any] | None:
    """A fingerprint's group from its counts per layer (None if it has no runs)."""
    counted = [(layer, v) for layer, v in layers.items() if v[1] > 0]
    if not counted:
        return None
    return {
        "fingerprint": fp,
        "errors": sum(v[0] for _, v in counted),
        "runs": sum(v[1] for _, v in counted),
        "layers": {layer: v[1] for layer, v in counted},
        "first_seen": min(v[2] for _, v in counted if v[2] is not None),
        "last_seen": max(v[3] for _, v in counted if v[3] is not None),
    }


def _merge_errors(parts: Iterable[tuple[Pairs, Days]]) -> tuple[ErrorCounts, int]:
    pairs: Pairs = {}
    days: Days = {}
    for part_pairs, part_days in parts:
        for fp, layers in part_pairs.items():
            for layer, values in layers.items():
                _add_pair(pairs, fp, layer, values)
        for fp, by_day in part_days.items():
            for day, (errors, runs) in by_day.items():
                _add_day(days, fp, day, errors, runs)
    groups = {fp: g for fp, layers in pairs.items() if (g := _group(fp, layers)) is not None}
    weight = sum(len(v) for v in pairs.values()) + sum(len(v) for v in days.values())
    return ErrorCounts(pairs, days, groups), weight


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
    cache: RollupCache = NO_CACHE,
) -> dict[str, Any]:
    """One page of error groups, largest first by `sort`, with exact counts and daily counts."""
    plan = plan_window(filters.since, filters.until, now=now, monthly=False)
    head = await read_head(conn, stable=plan.stable, raw=plan.raw, query=occurrences_query(filters))
    (stable,) = await merged_parts(
        conn,
        cache,
        kind=("error_groups", filters.dimensions),
        windows=[plan.stable],
        changes=head.changes,
        part=partial(_stable_part, f=filters),
        fold=_fold_errors,
        merge=_merge_errors,
    )
    # The raw occurrences, per fingerprint and layer, and per fingerprint and day;
    # each group they touch is copied and added to.
    added: Pairs = {}
    added_days: Days = {}
    for _part, _changes, _moment, fp, layer, started, errors in plan.raw_rows(head.rows):
        _add_pair(added, fp, layer, [errors, 1, started, started])
        _add_day(added_days, fp, floor_day(started), errors, 1)
    groups = dict(stable.groups)
    for fp, layers in added.items():
        base = groups.get(fp)
        group = _group(fp, layers)
        if group is None:  # cannot be: each raw occurrence is a run
            continue
        if base is not None:
            group["errors"] += base["errors"]
            group["runs"] += base["runs"]
            for name, runs in base["layers"].items():
                group["layers"][name] = group["layers"].get(name, 0) + runs
            group["first_seen"] = min(group["first_seen"], base["first_seen"])
            group["last_seen"] = max(group["last_seen"], base["last_seen"])
        groups[fp] = group
    ranked = sorted(groups.values(), key=lambda g: (g[sort], g["fingerprint"]), reverse=True)
    total_groups = len(ranked)
    spec = _sort_spec(sort)
    if cursor is not None:
        value, after = decode_cursor(cursor, spec)
        ranked = [g for g in ranked if (g[sort], g["fingerprint"]) < (value, after)]
    page, more = ranked[:limit], len(ranked) > limit
    next_cursor = encode_cursor(spec, page[-1][sort], page[-1]["fingerprint"]) if more else None
    if page:
        by_day: Days = {}
        for g in page:
            fp = g["fingerprint"]
            by_day[fp] = stable.days.get(fp, {})
            if fp in added_days:
                by_day[fp] = {day: list(counts) for day, counts in by_day[fp].items()}
                for day, (errors, runs) in added_days[fp].items():
                    _add_day(by_day, fp, day, errors, runs)
        await _complete(conn, page, filters, by_day, now, cache)
    return {
        "since": filters.since,
        "until": filters.until,
        "total_groups": total_groups,
        "total_errors": sum(g["errors"] for g in groups.values()),
        "groups": page,
        "limit": limit,
        "next_cursor": next_cursor,
    }


async def _complete(
    conn: AsyncConnection,
    page: list[dict[str, Any]],
    filters: ErrorFilter,
    daily: Mapping[str, Mapping[datetime, list[int]]],
    now: datetime,
    cache: RollupCache,
) -> None:
    """Add names, samples and daily counts to the groups of one page."""
    wanted = tuple(g["fingerprint"] for g in page)
    narrowed = ErrorFilter(**{**filters.__dict__, "fingerprints": wanted})
    names = await fingerprint_names(conn, wanted, cache)
    samples = await sample_run_ids(conn, narrowed, wanted)
    first_day = floor_day(filters.since)
    end = filters.until or now
    # Up to the window's last day, or a group's last day with errors if later (a run
    # recorded with a future start).
    window_end = floor_day(end - timedelta(microseconds=1))
    latest = max([window_end, *(day for counts in daily.values() for day in counts)])
    window_days = [(day, day.date().isoformat()) for day in _days(first_day, latest)]
    for i, g in enumerate(page):
        fp = g["fingerprint"]
        kind, template, sample = names.get(fp, ("", "", ""))
        by_day = daily.get(fp) or {}
        last_day = max([window_end, *by_day])
        # In the order of the ErrorGroup schema: the answer is encoded as it is.
        page[i] = {
            "fingerprint": fp,
            "type": kind,
            "message": template,
            "sample_message": sample,
            "errors": g["errors"],
            "runs": g["runs"],
            "layers": dict(sorted(g["layers"].items(), key=lambda kv: (-kv[1], kv[0]))),
            "first_seen": g["first_seen"],
            "last_seen": g["last_seen"],
            "sample_run_ids": samples.get(fp, []),
            "days": [
                {"date": iso, "errors": counts[0], "runs": counts[1]}
                for day, iso in window_days
                if day <= last_day
                for counts in (by_day.get(day, NONE),)
            ],
        }


def _days(first: datetime, last: datetime) -> list[datetime]:
    out, day = [], first
    while day <= last:
        out.append(day)
        day += timedelta(days=1)
    return out
