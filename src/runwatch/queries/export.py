"""The queries an export reads in keyset chunks: each kind's list query with every detail column."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select

from runwatch.queries import extraction_runs, layer_runs


def layer_run_export_query(filters: layer_runs.LayerRunFilter) -> Select[Any]:
    """`GET /runs` with these filters, selecting what `GET /runs/{id}` shows."""
    return select(*layer_runs.DETAIL_COLUMNS).where(*layer_runs.layer_run_conditions(filters))


def extraction_run_export_query(filters: extraction_runs.ExtractionRunFilter) -> Select[Any]:
    """`GET /extraction-runs` with these filters, selecting what a run's detail shows."""
    conditions = extraction_runs.extraction_run_conditions(filters)
    return select(*extraction_runs.DETAIL_COLUMNS).where(*conditions)
