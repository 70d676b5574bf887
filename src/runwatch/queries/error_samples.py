"""The names and sample runs of a page of error groups.

A fingerprint's type, template and sample message never change once written,
so they are kept in the process's cache; the sample runs are the latest runs
of each fingerprint in the window, read in one statement for the whole page.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.db.tables import error_fingerprints, layer_run_errors
from runwatch.db.types import as_utc
from runwatch.queries.error_filters import ErrorFilter, error_conditions, occurrences_query
from runwatch.queries.segment_cache import RollupCache
from runwatch.queries.statements import STATEMENTS

e = layer_run_errors

SAMPLE_RUNS = 5


async def fingerprint_names(
    conn: AsyncConnection, wanted: tuple[str, ...], cache: RollupCache
) -> dict[str, tuple[str, str, str]]:
    """Type, template and sample message per fingerprint (they never change once written)."""
    out = {fp: found for fp in wanted if (found := cache.get(("fingerprint", fp))) is not None}
    unknown = [fp for fp in wanted if fp not in out]
    if unknown:
        f = error_fingerprints
        query = select(f.c.fingerprint, f.c.type, f.c.template, f.c.sample_message).where(
            f.c.fingerprint.in_(unknown)
        )
        for fp, kind, template, sample in await conn.execute(query):
            out[fp] = (kind, template, sample)
            cache.put(("fingerprint", fp), out[fp], 1)
    return out


def _samples_statement(count: int, f: ErrorFilter) -> Any:
    window = [e.c.started_at >= bindparam("since")]
    if f.until is not None:
        window.append(e.c.started_at < bindparam("until"))
    parts = []
    for i in range(count):
        latest = (
            select(e.c.fingerprint, e.c.run_id, e.c.started_at)
            .where(
                e.c.fingerprint == bindparam(f"fp{i}"), *window, *error_conditions(e, f, bound=True)
            )
            .order_by(e.c.started_at.desc(), e.c.run_id.desc())
            .limit(SAMPLE_RUNS)
            .subquery()
        )
        parts.append(select(latest.c.fingerprint, latest.c.run_id, latest.c.started_at))
    union = union_all(*parts).subquery("samples")
    return select(union.c.fingerprint, union.c.run_id, union.c.started_at)


async def sample_run_ids(
    conn: AsyncConnection, filters: ErrorFilter, wanted: tuple[str, ...]
) -> dict[str, list[str]]:
    """The latest runs of each fingerprint in the window, latest first."""
    query = occurrences_query(filters)
    shape = ("error_samples", len(wanted), query.shape, filters.until is not None)
    plain = ErrorFilter(**{**filters.__dict__, "fingerprints": ()})
    statement = STATEMENTS.get(shape, lambda: _samples_statement(len(wanted), plain))
    params = {**query.params, "since": filters.since, "until": filters.until}
    params.update({f"fp{i}": fp for i, fp in enumerate(wanted)})
    out: dict[str, list[tuple[Any, str]]] = defaultdict(list)
    for fp, run_id, started in await conn.execute(statement, params):
        out[fp].append((as_utc(_moment(started)), run_id))
    return {fp: [run_id for _, run_id in sorted(rows, reverse=True)] for fp, rows in out.items()}


def _moment(value: Any) -> datetime:
    """A timestamp from a union on SQLite comes back as text."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value
