"""What the error groups can be narrowed by, as conditions on the error tables and on runs.

One filter feeds the group counts, the raw occurrences read with them and
the sample runs of a page, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, select

from runwatch.db.tables import layer_run_errors, layer_runs
from runwatch.queries.segment_cache import RawQuery

e = layer_run_errors
t = layer_runs


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

    @property
    def dimensions(self) -> tuple[Any, ...]:
        """What, besides the window, the counts depend on (a cache key)."""
        return (self.layer_name, self.statuses, self.model_name, self.layer_hash)


def error_conditions(
    table: Any, f: ErrorFilter, *, bound: bool = False
) -> list[ColumnElement[bool]]:
    """The filter's conditions, with its values as they are or as named bind parameters."""

    def value(name: str, given: Any) -> Any:
        return bindparam(name, expanding=name == "statuses") if bound else given

    conditions: list[ColumnElement[bool]] = []
    if f.layer_name is not None:
        conditions.append(table.c.layer_name == value("layer_name", f.layer_name))
    if f.statuses:
        conditions.append(table.c.status.in_(value("statuses", list(f.statuses))))
    if f.model_name is not None:
        conditions.append(table.c.model_name == value("model_name", f.model_name))
    if f.layer_hash is not None:
        conditions.append(table.c.layer_hash == value("layer_hash", f.layer_hash))
    if f.fingerprints:
        conditions.append(table.c.fingerprint.in_(f.fingerprints))
    return conditions


def occurrences_query(f: ErrorFilter) -> RawQuery:
    """The occurrence rows read raw: fingerprint, layer, start and number of errors."""
    params = {
        name: value
        for name, value in (
            ("layer_name", f.layer_name),
            ("statuses", list(f.statuses) or None),
            ("model_name", f.model_name),
            ("layer_hash", f.layer_hash),
        )
        if value is not None
    }
    return RawQuery(
        shape=("error_occurrences", *sorted(params)),
        columns=lambda: (e.c.fingerprint, e.c.layer_name, e.c.started_at, e.c.errors),
        started_at=lambda: e.c.started_at,
        where=lambda: error_conditions(e, f, bound=True),
        params=params,
    )


def error_fingerprint_condition(fingerprint: str) -> ColumnElement[bool]:
    """Runs that have at least one error with this fingerprint."""
    return t.c.id.in_(select(e.c.run_id).where(e.c.fingerprint == fingerprint))
