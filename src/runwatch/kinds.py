"""The kinds of run, each described once: the shared list, get, count and export read it.

A `RunKind` says what the shared read path needs to know about one kind of
run: its table and the column its time window bounds, its exact-match filter
fields, its list and detail columns, its query and answer models, how its
exports flatten to CSV, and whether its writes advance the data version.
`queries/runs.py` runs the SQL from it, `api/run_routes.py` makes the routes.

Adding a kind of run: a table and its migration, one description here, and
its own routes for what only it does (writes, stats).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Column, Table

from runwatch.db.tables import extraction_runs, layer_runs
from runwatch.domain import EXTRACTION_RUN_STATUSES, LAYER_RUN_STATUSES, STANDARD_METRICS
from runwatch.queries.layer_runs import DETAIL_COLUMNS as LAYER_DETAIL_COLUMNS
from runwatch.queries.layer_runs import LAYER_RUN_TOTALS
from runwatch.queries.runs import RollupTotals
from runwatch.schemas import extraction_runs as extraction_schemas
from runwatch.schemas import layer_runs as layer_schemas


def _same(row: Mapping[str, Any]) -> Mapping[str, Any]:
    return row


@dataclass(frozen=True)
class QueryNames:
    """The names a kind's reads are timed under (`runwatch_db_query_duration_seconds`)."""

    list: str
    count: str
    get: str


@dataclass(frozen=True, eq=False)
class RunKind:
    """One kind of run, as the shared read path sees it."""

    name: str  # in statement keys and query names: `layer`, `extraction`
    label: str  # in messages: "No layer run with id …"
    path: str  # where its routes live
    table: Table
    time_column: str  # what `since`/`until` bound and the default sort is on
    statuses: tuple[str, ...]
    filter_fields: tuple[str, ...]  # exact-match filters, each a column and a query field
    list_columns: tuple[Column[Any], ...]
    detail_columns: tuple[Column[Any], ...]
    list_query: type[BaseModel]  # filters, sort and paging of its list
    export_query: type[BaseModel]  # filters, sort and format of its export
    page_model: type[BaseModel]
    detail_model: type[BaseModel]
    # Whether its writes advance the data version. Without, an answer's tag is
    # a hash of its body (a shared version row would queue concurrent claims).
    versioned: bool
    # Exact totals from rollups for the filters they are kept by (else a count).
    rollup_totals: RollupTotals | None = None
    # A stored row's columns as the detail's fields (columns that nest, say).
    detail_fields: Callable[[Mapping[str, Any]], Mapping[str, Any]] = _same
    # Detail fields (objects or lists) a CSV export keeps as JSON text in one cell,
    # and CSV columns taken from inside such a field (`metrics.f1`).
    csv_json_fields: tuple[str, ...] = ()
    csv_extra_columns: tuple[tuple[str, ...], ...] = ()
    # Detail fields that are objects built from columns: field → ((key, column), …).
    nested: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)

    @property
    def default_sort(self) -> str:
        return "-" + self.time_column

    @cached_property
    def list_keys(self) -> tuple[str, ...]:
        # Plain `str` (column names are a subclass), as the JSON encoder wants.
        return tuple(str(column.name) for column in self.list_columns)

    @cached_property
    def detail_keys(self) -> tuple[str, ...]:
        return tuple(str(column.name) for column in self.detail_columns)

    @cached_property
    def query_names(self) -> QueryNames:
        plural = f"{self.name}_runs"
        return QueryNames(f"list_{plural}", f"count_{plural}", f"get_{self.name}_run")


_layer = layer_runs
LAYER_RUNS = RunKind(
    name="layer",
    label="layer run",
    path="/runs",
    table=_layer,
    time_column="started_at",
    statuses=LAYER_RUN_STATUSES,
    filter_fields=("layer_name", "model_name"),
    list_columns=(
        _layer.c.id,
        _layer.c.layer_name,
        _layer.c.status,
        _layer.c.started_at,
        _layer.c.completed_at,
        _layer.c.duration_seconds,
        _layer.c.targets_processed,
        _layer.c.insights_created,
        _layer.c.tokens_total,
        _layer.c.estimated_cost_usd,
        _layer.c.model_name,
    ),
    detail_columns=LAYER_DETAIL_COLUMNS,
    list_query=layer_schemas.LayerRunListQuery,
    export_query=layer_schemas.LayerRunExportQuery,
    page_model=layer_schemas.LayerRunPage,
    detail_model=layer_schemas.LayerRunDetail,
    versioned=True,
    rollup_totals=LAYER_RUN_TOTALS,
    csv_json_fields=("errors",),
)

_extraction = extraction_runs
# Kept for the summaries (see tables.py), not shown: the metrics are in `metrics`.
_EXTRACTION_HIDDEN = (
    "metric_precision",
    "metric_recall",
    "metric_f1",
    "metric_latency_ms",
    "updated_at",
)
EXTRACTION_RUNS = RunKind(
    name="extraction",
    label="extraction run",
    path="/extraction-runs",
    table=_extraction,
    time_column="created_at",
    statuses=EXTRACTION_RUN_STATUSES,
    filter_fields=("prompt_id", "config_id", "document_name"),
    list_columns=(
        _extraction.c.id,
        _extraction.c.prompt_id,
        _extraction.c.config_id,
        _extraction.c.document_name,
        _extraction.c.status,
        _extraction.c.created_at,
        _extraction.c.started_at,
        _extraction.c.completed_at,
        _extraction.c.cost_usd,
    ),
    detail_columns=tuple(c for c in _extraction.columns if c.name not in _EXTRACTION_HIDDEN),
    list_query=extraction_schemas.ExtractionRunListQuery,
    export_query=extraction_schemas.ExtractionRunExportQuery,
    page_model=extraction_schemas.ExtractionRunPage,
    detail_model=extraction_schemas.ExtractionRunDetail,
    versioned=False,
    detail_fields=extraction_schemas.detail_fields,
    csv_json_fields=("output", "metrics", "expected"),
    csv_extra_columns=tuple(("metrics", name) for name in STANDARD_METRICS),
    nested={"tokens": (("input", "tokens_input"), ("output", "tokens_output"))},
)

KINDS = (LAYER_RUNS, EXTRACTION_RUNS)
