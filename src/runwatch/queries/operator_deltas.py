"""What a write of layer runs changes in the error, version and duration rollups.

The rows a write added and removed (an update is both) become the rows to
apply: summed per rollup key and sorted in key order, so that concurrent
writers lock rollup rows in the same order. Plain Python; the statements that
apply them are in `operator_rollups`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from operator import add, itemgetter
from typing import Any

from runwatch.db.tables import ERROR_ROLLUP_GRAINS, NO_MODEL
from runwatch.fingerprints import run_signatures
from runwatch.percentiles import duration_bin
from runwatch.queries.buckets import (
    DAY,
    GRAINS,
    HOUR,
    floor_day,
    floor_hour,
    micros,
    nanos,
    square,
)

FLOORS = {"hour": floor_hour, "day": floor_day}
STEPS = {"hour": HOUR, "day": DAY}
ERROR_KEY = (
    "grain",
    "bucket_start",
    "fingerprint",
    "layer_name",
    "layer_hash",
    "status",
    "model_name",
)
ERROR_SUMS = ("errors", "runs")
VERSION_KEY = ("grain", "bucket_start", "layer_name", "layer_hash", "status")
VERSION_SUMS = (
    "runs",
    "completed_runs",
    "duration_us",
    "duration_sq",
    "insights",
    "tokens",
    "cost_runs",
    "cost_nanousd",
    "cost_sq",
)
DURATION_KEY = ("grain", "bucket_start", "layer_name", "layer_hash", "bin")

Rows = list[Mapping[str, Any]]


# --- error groups -----------------------------------------------------------------


def _occurrences(row: Mapping[str, Any]) -> dict[tuple[Any, ...], dict[str, Any]]:
    out = {}
    for fingerprint, (sig, count) in run_signatures(row.get("errors")).items():
        occurrence = {
            "run_id": row["id"],
            "fingerprint": fingerprint,
            "started_at": row["started_at"],
            "layer_name": row["layer_name"],
            "layer_hash": row["layer_hash"],
            "status": row["status"],
            "model_name": row["model_name"],
            "errors": count,
        }
        out[tuple(occurrence.values())] = {"occurrence": occurrence, "signature": sig}
    return out


def _error_key(grain: str, occ: Mapping[str, Any]) -> tuple[Any, ...]:
    return (
        grain,
        FLOORS[grain](occ["started_at"]),
        occ["fingerprint"],
        occ["layer_name"],
        occ["layer_hash"],
        occ["status"],
        occ["model_name"] or NO_MODEL,
    )


@dataclass(frozen=True)
class ErrorChanges:
    """A write's changes to the error occurrences and to their rollups."""

    gone: list[tuple[str, str]]  # (run id, fingerprint) of occurrences no longer there, sorted
    fingerprints: list[dict[str, Any]]  # the names of the new occurrences' fingerprints
    occurrences: list[dict[str, Any]]  # the new occurrences, in (run id, fingerprint) order
    rollups: list[dict[str, Any]]  # per ERROR_KEY in key order: ERROR_SUMS, first and last seen


def error_changes(added: Rows, removed: Rows) -> ErrorChanges | None:
    """The occurrences that went and came, and the rollup deltas; None if none did."""
    before: dict[tuple[Any, ...], dict[str, Any]] = {}
    after: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in removed:
        before.update(_occurrences(row))
    for row in added:
        after.update(_occurrences(row))
    # In the order the runs came (not a set's order, which the hash seed decides).
    gone = [value["occurrence"] for key, value in before.items() if key not in after]
    new = [value for key, value in after.items() if key not in before]
    if not gone and not new:
        return None
    deltas: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])
    seen: dict[tuple[Any, ...], list[datetime]] = defaultdict(list)
    for occ, sign in [(o, -1) for o in gone] + [(n["occurrence"], 1) for n in new]:
        for grain in ERROR_ROLLUP_GRAINS:
            key = _error_key(grain, occ)
            deltas[key][0] += sign * occ["errors"]
            deltas[key][1] += sign
            if sign > 0:
                seen[key].append(occ["started_at"])
    rollups = []
    for key, delta in sorted(deltas.items(), key=lambda kv: kv[0]):
        if delta[0] == 0 and delta[1] == 0:
            continue
        moments = seen.get(key)
        rollups.append(
            {
                **dict(zip(ERROR_KEY, key, strict=True)),
                "errors": delta[0],
                "runs": delta[1],
                "first_seen": min(moments) if moments else None,
                "last_seen": max(moments) if moments else None,
            }
        )
    fingerprints, occurrences = _new_occurrences(new)
    return ErrorChanges(
        gone=sorted((o["run_id"], o["fingerprint"]) for o in gone),
        fingerprints=fingerprints,
        occurrences=occurrences,
        rollups=rollups,
    )


def added_errors(added: Rows) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The fingerprints and occurrences of runs just added (`error_changes` without rollups)."""
    new: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in added:
        new.update(_occurrences(row))
    return _new_occurrences(list(new.values()))


def _new_occurrences(
    new: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The fingerprints to name (sorted) and the occurrences to store, in (run id, fingerprint)
    order."""
    # A group's sample message is that of its first run in the write.
    names: dict[str, Any] = {}
    for n in new:
        names.setdefault(n["signature"].fingerprint, n["signature"])
    fingerprints = [
        {"fingerprint": fp, "type": s.type, "template": s.template, "sample_message": s.message}
        for fp, s in sorted(names.items())
    ]
    occurrences = sorted((n["occurrence"] for n in new), key=itemgetter("run_id", "fingerprint"))
    return fingerprints, occurrences


# --- layer versions -------------------------------------------------------------


def version_values(row: Mapping[str, Any], sign: int) -> list[Any]:
    """A run's contribution to the sums in VERSION_SUMS order, times `sign`."""
    duration = row["duration_seconds"]
    cost = row["estimated_cost_usd"]
    return [
        sign,
        sign * (row["completed_at"] is not None),
        sign * micros(duration),
        sign * square(duration),
        sign * (row["insights_created"] or 0),
        sign * (row["tokens_total"] or 0),
        sign * (cost is not None),
        sign * nanos(cost),
        sign * square(cost),
    ]


def _buckets(
    started: datetime, known: dict[datetime, tuple[tuple[str, datetime], ...]]
) -> tuple[tuple[str, datetime], ...]:
    """The (grain, bucket start) of each of `ERROR_ROLLUP_GRAINS` that `started` falls in.

    `known` keeps them by hour for the call: the runs of a batch share few hours.
    """
    hour = floor_hour(started)
    buckets = known.get(hour)
    if buckets is None:
        buckets = known[hour] = tuple((g, FLOORS[g](hour)) for g in ERROR_ROLLUP_GRAINS)
    return buckets


def version_changes(added: Rows, removed: Rows) -> list[dict[str, Any]]:
    """Per VERSION_KEY in key order: the VERSION_SUMS deltas, first and last seen.

    Each key's values are added up run by run in the order given (the float
    sums of squares depend on it), starting from 0.
    """
    deltas: dict[tuple[Any, ...], list[Any]] = {}
    seen: dict[tuple[Any, ...], list[datetime]] = {}
    zeros = (0,) * len(VERSION_SUMS)
    known: dict[datetime, tuple[tuple[str, datetime], ...]] = {}
    for rows, sign in ((removed, -1), (added, 1)):
        for row in rows:
            values = version_values(row, sign)
            started = row["started_at"]
            rest = (row["layer_name"], row["layer_hash"], row["status"])
            for bucket in _buckets(started, known):
                key = (*bucket, *rest)
                deltas[key] = list(map(add, deltas.get(key, zeros), values))
                if sign > 0:
                    span = seen.get(key)
                    if span is None:
                        seen[key] = [started, started]
                    elif started < span[0]:
                        span[0] = started
                    elif started > span[1]:
                        span[1] = started
    no_span = (None, None)
    return [
        {
            **dict(zip(VERSION_KEY, key, strict=True)),
            **dict(zip(VERSION_SUMS, values, strict=True)),
            **dict(zip(("first_seen", "last_seen"), seen.get(key, no_span), strict=True)),
        }
        for key, values in sorted(deltas.items(), key=lambda kv: kv[0])
        if any(values)
    ]


# --- duration histograms ------------------------------------------------------


def duration_changes(added: Rows, removed: Rows) -> list[dict[str, Any]]:
    """Per DURATION_KEY in key order: the runs added to (or taken from) the bin."""
    deltas: dict[tuple[Any, ...], int] = defaultdict(int)
    known: dict[datetime, tuple[tuple[str, datetime], ...]] = {}
    for rows, sign in ((removed, -1), (added, 1)):
        for row in rows:
            if row["duration_seconds"] is None:
                continue
            index = duration_bin(row["duration_seconds"])
            for grain, start in _buckets(row["started_at"], known):
                deltas[(grain, start, row["layer_name"], row["layer_hash"], index)] += sign
    return [
        {**dict(zip(DURATION_KEY, key, strict=True)), "runs": n}
        for key, n in sorted(deltas.items(), key=lambda kv: kv[0])
        if n
    ]


# --- bucket change counters -------------------------------------------------------


def changed_buckets(added: Rows, removed: Rows) -> list[dict[str, Any]]:
    """One change for every hour, day and month the write's runs started in, in key order."""
    hours = {floor_hour(row["started_at"]) for row in (*removed, *added)}
    buckets = sorted({(grain, floor(hour)) for hour in hours for grain, floor, _ceil in GRAINS})
    return [{"grain": grain, "bucket_start": start, "changes": 1} for grain, start in buckets]
