"""Layer versions: the row of each `layer_hash`, compares of two, and regressions found unasked.

What a version's totals mean is decided here: its success rate, means per run,
the significance tests of a compare and which differences make a newest
version a regression. The totals are read and folded by `queries/versions.py`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.errors import NotFound
from runwatch.queries.durations import percentile_fields
from runwatch.queries.segment_cache import NO_CACHE, RollupCache
from runwatch.queries.versions import VersionTotals, version_totals
from runwatch.significance import Moments, success_rate, two_proportion_p_value, welch_p_value

SIGNIFICANCE = 0.05
# Per metric a regression is tested on: +1 when higher is worse, -1 when lower is.
WORSE_WHEN = {"success_rate": -1, "mean_duration_seconds": 1, "cost_per_run_usd": 1}


def finished_runs(v: VersionTotals) -> int:
    """The runs that finished calling a model: success, failed and partial."""
    return v.by_status["success"] + v.by_status["failed"] + v.by_status["partial"]


def _duration(v: VersionTotals) -> Moments:
    s = v.sums
    return Moments(int(s["completed_runs"]), s["duration_us"] / 1e6, s["duration_sq"])


def _cost(v: VersionTotals) -> Moments:
    s = v.sums
    return Moments(int(s["cost_runs"]), s["cost_nanousd"] / 1e9, s["cost_sq"])


def version_row(v: VersionTotals) -> dict[str, Any]:
    """One row of `GET /runs/stats/versions`, and one side of a compare."""
    runs = int(v.sums["runs"])
    s = v.by_status
    return {
        "layer_hash": v.layer_hash,
        "first_seen": v.first_seen,
        "last_seen": v.last_seen,
        "runs": runs,
        "finished_runs": finished_runs(v),
        "by_status": dict(s),
        "success_rate": success_rate(s["success"], s["failed"], s["partial"]),
        "mean_duration_seconds": _duration(v).mean,
        **percentile_fields(v.percentiles),
        "insights_per_run": v.sums["insights"] / runs if runs else None,
        "tokens_per_run": v.sums["tokens"] / runs if runs else None,
        "cost_per_run_usd": _cost(v).mean,
    }


async def list_versions(
    conn: AsyncConnection,
    *,
    layer_name: str,
    since: datetime,
    until: datetime | None,
    now: datetime | None = None,
    cache: RollupCache = NO_CACHE,
) -> list[dict[str, Any]]:
    """The rows of `GET /runs/stats/versions`: one per layer_hash, in order of first use."""
    found = await version_totals(
        conn, since=since, until=until, layer_name=layer_name, now=now, cache=cache
    )
    return [version_row(v) for v in found]


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def compare_totals(a: VersionTotals, b: VersionTotals) -> dict[str, Any]:
    """Both rows, the differences b - a, and the tests' p-values."""
    row_a, row_b = version_row(a), version_row(b)
    p_success = two_proportion_p_value(
        a.by_status["success"], finished_runs(a), b.by_status["success"], finished_runs(b)
    )
    p_duration = welch_p_value(_duration(a), _duration(b))
    p_cost = welch_p_value(_cost(a), _cost(b))
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
    now: datetime | None = None,
    cache: RollupCache = NO_CACHE,
) -> dict[str, Any]:
    """`GET /runs/stats/versions/compare`: version `a` against `b` of one layer."""
    found = {
        v.layer_hash: v
        for v in await version_totals(
            conn, since=since, until=until, layer_name=layer_name, now=now, cache=cache
        )
    }
    for name in (a, b):
        if name not in found:
            raise NotFound(f"Layer '{layer_name}' has no runs of version '{name}' in the window.")
    return {"layer_name": layer_name, **compare_totals(found[a], found[b])}


async def find_regressions(
    conn: AsyncConnection,
    *,
    since: datetime,
    until: datetime | None,
    min_runs: int,
    layer_name: str | None = None,
    now: datetime | None = None,
    cache: RollupCache = NO_CACHE,
) -> list[dict[str, Any]]:
    """Layers whose newest version is significantly worse than the version before it.

    Compared when both versions have at least `min_runs` finished runs in the
    window; worse means a lower success rate, or a higher mean duration or
    cost per run, with p < 0.05.
    """
    by_layer: dict[str, list[VersionTotals]] = {}
    found = await version_totals(
        conn, since=since, until=until, layer_name=layer_name, now=now, cache=cache
    )
    for v in found:
        by_layer.setdefault(v.layer_name, []).append(v)
    out = []
    for name, versions in sorted(by_layer.items()):
        if len(versions) < 2:
            continue
        previous, newest = versions[-2], versions[-1]
        if finished_runs(previous) < min_runs or finished_runs(newest) < min_runs:
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
