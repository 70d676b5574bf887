"""The client's methods for health and layer runs: `/healthz`, `/readyz` and `/runs…`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import IO, Any, Literal, TypedDict, Unpack

from runwatch.client.calls import (
    Batch,
    Call,
    Download,
    ExportOptions,
    Lines,
    Pages,
    Paging,
    body,
    chunks,
    params,
    with_id,
)
from runwatch.client.methods import iterator, method
from runwatch.schemas.layer_runs import (
    BatchResult,
    LayerRunCreate,
    LayerRunDetail,
    LayerRunDetailNow,
    LayerRunPage,
    LayerRunSummary,
    LayerRunUpdate,
    StatsSummary,
    Timeseries,
)


class LayerRunFilters(TypedDict, total=False):
    """The filters and sort of `GET /runs` (and its export)."""

    layer_name: str
    status: str | Sequence[str]
    since: datetime | str
    until: datetime | str
    model_name: str
    sort: str


class LayerRunListFilters(LayerRunFilters, total=False):
    """`LayerRunFilters` and the operator's filters of `GET /runs`."""

    error_fingerprint: str
    stuck: bool


class LayerRunListQuery(LayerRunListFilters, Paging, total=False):
    """Everything `GET /runs` takes."""


class LayerRunExport(LayerRunFilters, ExportOptions, total=False):
    """Everything `export_runs` takes besides the file."""


def _health(content: bytes) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(content)
    return answer


def _merge_batches(results: list[BatchResult]) -> BatchResult:
    return BatchResult(
        created=sum(r.created for r in results),
        already_present=sum(r.already_present for r in results),
        results=[item for result in results for item in result.results],
    )


def _runs_of(page: LayerRunPage) -> list[LayerRunSummary]:
    return page.runs


class LayerRunMethods:
    """Health and layer runs, for `RunwatchClient` and `AsyncRunwatchClient`."""

    # health

    @method
    def health() -> Call[dict[str, Any]]:
        """`GET /healthz`."""
        return Call("GET", "/healthz", _health)

    @method
    def ready() -> Call[dict[str, Any]]:
        """`GET /readyz`: raises `UnavailableError` while the database is not ready."""
        return Call("GET", "/readyz", _health)

    # reading

    @method
    def list_runs(**query: Unpack[LayerRunListQuery]) -> Call[LayerRunPage]:
        """One page of `GET /runs`: `limit`, `offset` or `cursor`, and the filters."""
        return Call("GET", "/runs", LayerRunPage.model_validate_json, params(**query))

    @iterator
    def iter_runs(
        *, page_size: int = 100, **filters: Unpack[LayerRunListFilters]
    ) -> Pages[LayerRunPage, LayerRunSummary]:
        """Every run matching the filters, page after page by `next_cursor`."""
        return Pages.listing(
            "/runs", LayerRunPage.model_validate_json, _runs_of, page_size, filters
        )

    @method
    def get_run(run_id: str) -> Call[LayerRunDetailNow]:
        """`GET /runs/{run_id}`; a running run also says whether it is stuck."""
        return Call("GET", f"/runs/{run_id}", LayerRunDetailNow.model_validate_json)

    @method
    def runs_summary(*, days: int = 7, layer_name: str | None = None) -> Call[StatsSummary]:
        """`GET /runs/stats/summary`."""
        query = params(days=days, layer_name=layer_name)
        return Call("GET", "/runs/stats/summary", StatsSummary.model_validate_json, query)

    @method
    def runs_timeseries(
        *,
        days: int = 7,
        bucket: Literal["hour", "day"] = "hour",
        layer_name: str | None = None,
    ) -> Call[Timeseries]:
        """`GET /runs/stats/timeseries`."""
        query = params(days=days, bucket=bucket, layer_name=layer_name)
        return Call("GET", "/runs/stats/timeseries", Timeseries.model_validate_json, query)

    # writing

    @method
    def create_run(
        run: LayerRunCreate | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> Call[LayerRunDetail]:
        """Record a run (a model, a mapping and/or keyword fields); an id is made if none."""
        data = with_id(body(run, fields))
        return Call("POST", "/runs", LayerRunDetail.model_validate_json, body=data)

    @method
    def create_runs(
        runs: Iterable[LayerRunCreate | Mapping[str, Any]], *, batch_size: int = 1000
    ) -> Batch[BatchResult, BatchResult]:
        """Record many runs, `batch_size` per request (each request all or nothing)."""
        calls = (
            Call(
                "POST",
                "/runs/batch",
                BatchResult.model_validate_json,
                body={"runs": [with_id(body(run, {})) for run in chunk]},
            )
            for chunk in chunks(runs, batch_size)
        )
        return Batch(calls, _merge_batches)

    @method
    def update_run(
        run_id: str, changes: LayerRunUpdate | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> Call[LayerRunDetail]:
        """`PATCH /runs/{run_id}`: progress, or completion with a final status."""
        data = body(changes, fields)
        return Call("PATCH", f"/runs/{run_id}", LayerRunDetail.model_validate_json, body=data)

    @method
    def delete_run(run_id: str) -> Call[None]:
        """`DELETE /runs/{run_id}`."""
        return Call("DELETE", f"/runs/{run_id}")

    # export

    @method
    def export_runs(out: IO[bytes], **options: Unpack[LayerRunExport]) -> Download:
        """Stream `GET /runs/export` (`format` ndjson or csv) into `out`; gives the rows written."""
        return Download.export("/runs/export", out, options)

    @iterator
    def iter_export_runs(**filters: Unpack[LayerRunFilters]) -> Lines[LayerRunDetail]:
        """Every matching run in full, streamed (NDJSON) rather than paged."""
        return Lines.export("/runs/export", LayerRunDetail.model_validate_json, filters)
