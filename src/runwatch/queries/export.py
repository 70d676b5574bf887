"""The queries an export reads in keyset chunks: each kind's list query with every detail field.

With `json_lines`, where the database can (PostgreSQL), each row comes back as
its detail object already written as JSON text (`line`), next to the `(sort
key, id)` that the keyset cursor needs; elsewhere the detail columns come back
and Python writes the objects. Filters are the lists' own, with the same bind
parameters, so the statement is built once per shape (see `fetch_page`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.db.dialect import json_object_value, rfc3339_text, select_json_lines
from runwatch.db.types import UtcDateTime
from runwatch.queries import extraction_runs, layer_runs
from runwatch.queries.pagination import Page, SortSpec, fetch_page


@dataclass(frozen=True)
class ExportQuery:
    """An export's statement (built once per shape), its parameters and its order."""

    shape: Hashable
    build: Callable[[], tuple[Select[Any], None]]
    params: dict[str, Any]
    spec: SortSpec

    async def chunk(self, conn: AsyncConnection, *, limit: int, cursor: str | None) -> Page:
        """The next `limit` rows after `cursor` (the keyset cursor of the previous chunk)."""
        return await fetch_page(
            conn,
            shape=self.shape,
            build=self.build,
            params=self.params,
            spec=self.spec,
            limit=limit,
            cursor=cursor,
        )


def _value(column: ColumnElement[Any]) -> ColumnElement[Any]:
    return rfc3339_text(column) if isinstance(column.type, UtcDateTime) else column


def _select(
    table: Any,
    detail_columns: Sequence[ColumnElement[Any]],
    pairs: list[tuple[str, ColumnElement[Any]]],
    conditions: list[ColumnElement[bool]],
    spec: SortSpec,
    dialect_name: str,
    json_lines: bool,
) -> Select[Any]:
    keys = (spec.id_column, spec.column)
    lines = select_json_lines(table, pairs, keys, dialect_name) if json_lines else None
    if lines is None:
        return select(*detail_columns).where(*conditions)
    return lines.where(*conditions)


def layer_run_export_query(
    filters: layer_runs.LayerRunFilter,
    spec: SortSpec,
    *,
    fields: Sequence[str],
    dialect_name: str,
    json_lines: bool = False,
) -> ExportQuery:
    """`GET /runs` with these filters, selecting what `GET /runs/{id}` shows (`fields`)."""
    t = layer_runs.t
    shape = layer_runs.filter_shape(filters)

    def build() -> tuple[Select[Any], None]:
        pairs = [(name, _value(t.c[name])) for name in fields]
        conditions = layer_runs.layer_run_conditions(shape)
        columns = layer_runs.DETAIL_COLUMNS
        return _select(t, columns, pairs, conditions, spec, dialect_name, json_lines), None

    return ExportQuery(
        shape=("export_layer_runs", shape, tuple(fields), dialect_name, json_lines),
        build=build,
        params=layer_runs.filter_params(filters),
        spec=spec,
    )


def extraction_run_export_query(
    filters: extraction_runs.ExtractionRunFilter,
    spec: SortSpec,
    *,
    fields: Sequence[str],
    dialect_name: str,
    json_lines: bool = False,
) -> ExportQuery:
    """`GET /extraction-runs` with these filters, selecting what a run's detail shows."""
    t = extraction_runs.t

    def build() -> tuple[Select[Any], None]:
        tokens = json_object_value([("input", t.c.tokens_input), ("output", t.c.tokens_output)])
        pairs = [(name, tokens if name == "tokens" else _value(t.c[name])) for name in fields]
        conditions = extraction_runs.extraction_run_conditions(filters)
        columns = extraction_runs.DETAIL_COLUMNS
        return _select(t, columns, pairs, conditions, spec, dialect_name, json_lines), None

    return ExportQuery(
        shape=(
            "export_extraction_runs",
            extraction_runs.filter_shape(filters),
            tuple(fields),
            dialect_name,
            json_lines,
        ),
        build=build,
        params=extraction_runs.filter_params(filters),
        spec=spec,
    )
