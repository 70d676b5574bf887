"""Layer versions: one row per `layer_hash`, compares of two, and regressions found unasked.

Read like the run rollups: whole days and hours of `layer_run_version_rollups`
plus the raw rows of the partial hours at the window's edges, so every count
and sum is exact; sums of squares carry floating-point rounding only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, literal, select, type_coerce, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.db.dialect import round_half_up_to_int
from runwatch.db.tables import layer_run_version_rollups, layer_runs
from runwatch.db.types import UtcDateTime, as_utc
from runwatch.domain import LAYER_RUN_STATUSES
from runwatch.errors import NotFound
from runwatch.queries.durations import duration_bin_counts, percentile_fields
from runwatch.queries.error_groups import window_segments
from runwatch.queries.operator_rollups import VERSION_SUMS
from runwatch.queries.rollups import Segment
from runwatch.significance import Moments, success_rate, two_proportion_p_value, welch_p_value

vr = layer_run_version_rollups
t = layer_runs

SIGNIFICANCE = 0.05


@dataclass
class VersionTotals:
    """Everything counted for one (layer, layer_hash) in a window."""

    layer_name: str
    layer_hash: str
    first_seen: datetime
    last_seen: datetime
    by_status: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LAYER_RUN_STATUSES, 0))
    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(VERSION_SUMS, 0))
    bins: dict[int, int] = field(default_factory=dict)

    @property
    def finished(self) -> int:
        return self.by_status["success"] + self.by_status["failed"] + self.by_status["partial"]

    @property
    def success_rate(self) -> float | None:
        s = self.by_status
        return success_rate(s["success"], s["failed"], s["partial"])

    @property
    def duration(self) -> Moments:
        s = self.sums
        return Moments(int(s["completed_runs"]), s["duration_us"] / 1e6, s["duration_sq"])

    @property
    def cost(self) -> Moments:
        s = self.sums
        return Moments(int(s["cost_runs"]), s["cost_nanousd"] / 1e9, s["cost_sq"])

    def row(self) -> dict[str, Any]:
        runs = int(self.sums["runs"])
        return {
            "layer_hash": self.layer_hash,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "runs": runs,
            "finished_runs": self.finished,
            "by_status": dict(self.by_status),
            "success_rate": self.success_rate,
            "mean_duration_seconds": self.duration.mean,
            **percentile_fields(self.bins),
            "insights_per_run": self.sums["insights"] / runs if runs else None,
            "tokens_per_run": self.sums["tokens"] / runs if runs else None,
            "cost_per_run_usd": self.cost.mean,
        }


def _bounds(column: Any, segment: Segment) -> list[ColumnElement[bool]]:
    out = []
    if segment.start is not None:
        out.append(column >= segment.start)
    if segment.end is not None:
        out.append(column < segment.end)
    return out


def _part(segment: Segment, layer_name: str | None, dialect_name: str) -> Any:
    if segment.source == "raw":
        duration, cost = t.c.duration_seconds, t.c.estimated_cost_usd
        return (
            select(
                t.c.layer_name,
                t.c.layer_hash,
                t.c.status,
                func.count().label("runs"),
                func.count(t.c.completed_at).label("completed_runs"),
                func.coalesce(
                    func.sum(round_half_up_to_int(duration * 1e6, dialect_name)), 0
                ).label("duration_us"),
                func.coalesce(func.sum(duration * duration), 0.0).label("duration_sq"),
                func.coalesce(func.sum(t.c.insights_created), 0).label("insights"),
                func.coalesce(func.sum(t.c.tokens_total), 0).label("tokens"),
                func.count(cost).label("cost_runs"),
                func.coalesce(func.sum(round_half_up_to_int(cost * 1e9, dialect_name)), 0).label(
                    "cost_nanousd"
                ),
                func.coalesce(func.sum(cost * cost), 0.0).label("cost_sq"),
                func.min(t.c.started_at).label("first_seen"),
                func.max(t.c.started_at).label("last_seen"),
            )
            .where(*_bounds(t.c.started_at, segment))
            .where(*([] if layer_name is None else [t.c.layer_name == layer_name]))
            .group_by(t.c.layer_name, t.c.layer_hash, t.c.status)
        )
    return (
        select(
            vr.c.layer_name,
            vr.c.layer_hash,
            vr.c.status,
            *(func.sum(vr.c[name]).label(name) for name in VERSION_SUMS),
            func.min(vr.c.first_seen).label("first_seen"),
            func.max(vr.c.last_seen).label("last_seen"),
        )
        .where(vr.c.grain == literal(segment.source), *_bounds(vr.c.bucket_start, segment))
        .where(*([] if layer_name is None else [vr.c.layer_name == layer_name]))
        .group_by(vr.c.layer_name, vr.c.layer_hash, vr.c.status)
    )


async def version_totals(
    conn: AsyncConnection,
    *,
    since: datetime,
    until: datetime | None,
    layer_name: str | None = None,
) -> list[VersionTotals]:
    """Per (layer, layer_hash), the totals of the runs started in the window, oldest first."""
    segments = window_segments(since, until)
    if not segments:
        return []
    union = union_all(*(_part(s, layer_name, conn.dialect.name) for s in segments)).subquery()
    query = select(
        union.c.layer_name,
        union.c.layer_hash,
        union.c.status,
        *(func.sum(union.c[name]).label(name) for name in VERSION_SUMS),
        type_coerce(func.min(union.c.first_seen), UtcDateTime).label("first_seen"),
        type_coerce(func.max(union.c.last_seen), UtcDateTime).label("last_seen"),
    ).group_by(union.c.layer_name, union.c.layer_hash, union.c.status)
    out: dict[tuple[str, str], VersionTotals] = {}
    for row in await conn.execute(query):
        if not row.runs or row.first_seen is None:
            continue
        first, last = as_utc(row.first_seen), as_utc(row.last_seen)
        v = out.get((row.layer_name, row.layer_hash))
        if v is None:
            v = out[(row.layer_name, row.layer_hash)] = VersionTotals(
                row.layer_name, row.layer_hash, first, last
            )
        v.first_seen, v.last_seen = min(v.first_seen, first), max(v.last_seen, last)
        v.by_status[row.status] += int(row.runs)
        for name in VERSION_SUMS:
            value = row._mapping[name] or 0
            v.sums[name] += float(value) if name.endswith("_sq") else int(value)
    counts = await duration_bin_counts(conn, since=since, until=until, layer_name=layer_name)
    for key, bins in counts.items():
        if key in out:
            out[key].bins = dict(bins)
    return sorted(out.values(), key=lambda v: (v.layer_name, v.first_seen, v.layer_hash))


async def list_versions(
    conn: AsyncConnection, *, layer_name: str, since: datetime, until: datetime | None
) -> list[dict[str, Any]]:
    """The rows of `GET /runs/stats/versions`: one per layer_hash, in order of first use."""
    return [
        v.row() for v in await version_totals(conn, since=since, until=until, layer_name=layer_name)
    ]


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def compare_totals(a: VersionTotals, b: VersionTotals) -> dict[str, Any]:
    """Both rows, the differences b - a, and the tests' p-values."""
    row_a, row_b = a.row(), b.row()
    p_success = two_proportion_p_value(
        a.by_status["success"], a.finished, b.by_status["success"], b.finished
    )
    p_duration = welch_p_value(a.duration, b.duration)
    p_cost = welch_p_value(a.cost, b.cost)
    metrics = (
        "success_rate",
        "mean_duration_seconds",
        "cost_per_run_usd",
        "tokens_per_run",
        "insights_per_run",
        "runs",
    )
    return {
        "a": row_a,
        "b": row_b,
        "differences": {m: _difference(row_a[m], row_b[m]) for m in metrics},
        "tests": {
            "success_rate": _test("two-proportion z-test", p_success),
            "mean_duration_seconds": _test("Welch's test", p_duration),
            "cost_per_run_usd": _test("Welch's test", p_cost),
        },
    }


def _test(name: str, p_value: float | None) -> dict[str, Any]:
    return {
        "test": name,
        "p_value": p_value,
        "significant": p_value is not None and p_value < SIGNIFICANCE,
    }


async def compare_versions(
    conn: AsyncConnection,
    *,
    layer_name: str,
    a: str,
    b: str,
    since: datetime,
    until: datetime | None,
) -> dict[str, Any]:
    """`GET /runs/stats/versions/compare`: version `a` against `b` of one layer."""
    found = {
        v.layer_hash: v
        for v in await version_totals(conn, since=since, until=until, layer_name=layer_name)
    }
    for name in (a, b):
        if name not in found:
            raise NotFound(f"Layer '{layer_name}' has no runs of version '{name}' in the window.")
    return {"layer_name": layer_name, **compare_totals(found[a], found[b])}


WORSE_WHEN = {"success_rate": -1, "mean_duration_seconds": 1, "cost_per_run_usd": 1}


async def find_regressions(
    conn: AsyncConnection,
    *,
    since: datetime,
    until: datetime | None,
    min_runs: int,
    layer_name: str | None = None,
) -> list[dict[str, Any]]:
    """Layers whose newest version is significantly worse than the version before it.

    Compared when both versions have at least `min_runs` finished runs in the
    window; worse means a lower success rate, or a higher mean duration or
    cost per run, with p < 0.05.
    """
    by_layer: dict[str, list[VersionTotals]] = {}
    for v in await version_totals(conn, since=since, until=until, layer_name=layer_name):
        by_layer.setdefault(v.layer_name, []).append(v)
    out = []
    for name, versions in sorted(by_layer.items()):
        if len(versions) < 2:
            continue
        previous, newest = versions[-2], versions[-1]
        if previous.finished < min_runs or newest.finished < min_runs:
            continue
        compared = compare_totals(previous, newest)
        worse = [
            metric
            for metric, direction in WORSE_WHEN.items()
            if compared["tests"][metric]["significant"]
            and (compared["differences"][metric] or 0) * direction > 0
        ]
        if worse:
            out.append({"layer_name": name, "worse": worse, **compared})
    return out
