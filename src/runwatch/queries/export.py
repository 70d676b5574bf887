"""The queries an export reads in keyset chunks: each kind's list query with every detail field.

With `json_lines`, where the database can (PostgreSQL), each row comes back as
its detail object already written as JSON text (`line`), next to the `(sort
key, id)` that the keyset cursor needs; elsewhere the detail columns come back
and Python writes the objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, select

from runwatch.db.dialect import json_object_text, json_object_value, rfc3339_text
from runwatch.db.types import UtcDateTime
from runwatch.queries import extraction_runs, layer_runs
from runwatch.queries.pagination import SortSpec


def _value(column: ColumnElement[Any]) -> ColumnElement[Any]:
    return rfc3339_text(column) if isinstance(column.type, UtcDateTime) else column


def _export_query(
    detail_columns: Sequence[ColumnElement[Any]],
    pairs: list[tuple[str, ColumnElement[Any]]],
    conditions: list[ColumnElement[bool]],
    spec: SortSpec,
    dialect_name: str,
    json_lines: bool,
) -> Select[Any]:
    line = json_object_text(pairs, dialect_name) if json_lines else None
    if line is None:
        return select(*detail_columns).where(*conditions)
    return select(line.label("line"), spec.id_column, spec.column).where(*conditions)


def layer_run_export_query(
    filters: layer_runs.LayerRunFilter,
    spec: SortSpec,
    *,
    fields: Sequence[str],
    dialect_name: str,
    json_lines: bool = False,
) -> Select[Any]:
    """`GET /runs` with these filters, selecting what `GET /runs/{id}` shows (`fields`)."""
    t = layer_runs.t
    pairs = [(name, _value(t.c[name])) for name in fields]
    conditions = layer_runs.layer_run_conditions(filters)
    return _export_query(
        layer_runs.DETAIL_COLUMNS, pairs, conditions, spec, dialect_name, json_lines
    )


def extraction_run_export_query(
    filters: extraction_runs.ExtractionRunFilter,
    spec: SortSpec,
    *,
    fields: Sequence[str],
    dialect_name: str,
    json_lines: bool = False,
) -> Select[Any]:
    """`GET /extraction-runs` with these filters, selecting what a run's detail shows."""
    t = extraction_runs.t
    tokens = json_object_value([("input", t.c.tokens_input), ("output", t.c.tokens_output)])
    pairs = [(name, tokens if name == "tokens" else _value(t.c[name])) for name in fields]
    conditions = extraction_runs.extraction_run_conditions(filters)
    return _export_query(
        extraction_runs.DETAIL_COLUMNS, pairs, conditions, spec, dialect_name, json_lines
    )
