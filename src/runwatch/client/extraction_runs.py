"""The client's methods for extraction runs: `/extraction-runs…`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import IO, Any, TypedDict, Unpack

from runwatch.client.calls import (
    Batch,
    Call,
    Download,
    ExportOptions,
    Lines,
    Pages,
    Paging,
    body,
    params,
    with_id,
)
from runwatch.client.methods import iterator, method
from runwatch.schemas.extraction_runs import (
    ClaimedRun,
    ClaimResult,
    ExtractionRunAccepted,
    ExtractionRunCreate,
    ExtractionRunDetail,
    ExtractionRunPage,
    ExtractionRunSummary,
    ExtractionRunUpdate,
    ExtractionStatsSummary,
    GroupComparison,
    RunComparison,
)

_PAGE = ExtractionRunPage.model_validate_json
_RUN = ExtractionRunDetail.model_validate_json


class ExtractionRunFilters(TypedDict, total=False):
    """The filters and sort of `GET /extraction-runs` (and its export)."""

    prompt_id: str
    config_id: str
    document_name: str
    status: str | Sequence[str]
    since: datetime | str
    until: datetime | str
    sort: str


class ExtractionRunListQuery(ExtractionRunFilters, Paging, total=False):
    """Everything `GET /extraction-runs` takes."""


class ExtractionRunExport(ExtractionRunFilters, ExportOptions, total=False):
    """Everything `export_extraction_runs` takes besides the file."""


def _runs_of(page: ExtractionRunPage) -> list[ExtractionRunSummary]:
    return page.runs


def _create(
    run: ExtractionRunCreate | Mapping[str, Any] | None, fields: Mapping[str, Any]
) -> Call[ExtractionRunAccepted]:
    data = with_id(body(run, fields))
    return Call("POST", "/extraction-runs", ExtractionRunAccepted.model_validate_json, body=data)


def _claimed(content: bytes) -> list[ClaimedRun]:
    return ClaimResult.model_validate_json(content).runs


class ExtractionRunMethods:
    """Extraction runs, for `RunwatchClient` and `AsyncRunwatchClient`."""

    # reading

    @method
    def list_extraction_runs(**query: Unpack[ExtractionRunListQuery]) -> Call[ExtractionRunPage]:
        """One page of `GET /extraction-runs`: `limit`, `offset` or `cursor`, and the filters."""
        return Call("GET", "/extraction-runs", _PAGE, params(**query))

    @iterator
    def iter_extraction_runs(
        *, page_size: int = 100, **filters: Unpack[ExtractionRunFilters]
    ) -> Pages[ExtractionRunPage, ExtractionRunSummary]:
        """Every extraction run matching the filters, page after page by `next_cursor`."""
        return Pages.listing("/extraction-runs", _PAGE, _runs_of, page_size, filters)

    @method
    def get_extraction_run(run_id: str) -> Call[ExtractionRunDetail]:
        """`GET /extraction-runs/{run_id}`."""
        return Call("GET", f"/extraction-runs/{run_id}", _RUN)

    @method
    def compare_extraction_runs(run_id: str, other_id: str) -> Call[RunComparison]:
        """`GET /extraction-runs/{run_id}/compare/{other_id}`: differences b - a."""
        return Call(
            "GET",
            f"/extraction-runs/{run_id}/compare/{other_id}",
            RunComparison.model_validate_json,
        )

    @method
    def compare_extraction_groups(
        *,
        a_prompt_id: str | None = None,
        a_config_id: str | None = None,
        b_prompt_id: str | None = None,
        b_config_id: str | None = None,
        document_name: str | None = None,
    ) -> Call[GroupComparison]:
        """`GET /extraction-runs/compare`: two prompt/config groups over the same documents."""
        query = params(
            a_prompt_id=a_prompt_id,
            a_config_id=a_config_id,
            b_prompt_id=b_prompt_id,
            b_config_id=b_config_id,
            document_name=document_name,
        )
        return Call("GET", "/extraction-runs/compare", GroupComparison.model_validate_json, query)

    @method
    def extraction_runs_summary(
        *, days: int = 7, prompt_id: str | None = None, config_id: str | None = None
    ) -> Call[ExtractionStatsSummary]:
        """`GET /extraction-runs/stats/summary`."""
        query = params(days=days, prompt_id=prompt_id, config_id=config_id)
        return Call(
            "GET",
            "/extraction-runs/stats/summary",
            ExtractionStatsSummary.model_validate_json,
            query,
        )

    # writing

    @method
    def create_extraction_run(
        run: ExtractionRunCreate | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> Call[ExtractionRunAccepted]:
        """Create a pending run (a model, a mapping and/or keyword fields)."""
        return _create(run, fields)

    @method
    def create_extraction_runs(
        runs: Iterable[ExtractionRunCreate | Mapping[str, Any]], *, concurrency: int = 8
    ) -> Batch[ExtractionRunAccepted, list[ExtractionRunAccepted]]:
        """Create many pending runs, one request each; the results in order.

        The async client has up to `concurrency` requests in flight; the
        blocking one sends them one after another.
        """
        return Batch((_create(run, {}) for run in runs), list, max(concurrency, 1))

    @method
    def update_extraction_run(
        run_id: str,
        changes: ExtractionRunUpdate | Mapping[str, Any] | None = None,
        /,
        **fields: Any,
    ) -> Call[ExtractionRunDetail]:
        """`PATCH /extraction-runs/{run_id}`: progress, a result or a failure."""
        return Call("PATCH", f"/extraction-runs/{run_id}", _RUN, body=body(changes, fields))

    @method
    def delete_extraction_run(run_id: str) -> Call[None]:
        """`DELETE /extraction-runs/{run_id}`."""
        return Call("DELETE", f"/extraction-runs/{run_id}")

    # workers

    @method
    def claim_extraction_runs(
        *, worker_id: str, max_runs: int = 1, lease_seconds: int | None = None
    ) -> Call[list[ClaimedRun]]:
        """Claim up to `max_runs` pending runs for `worker_id`, leased for `lease_seconds`."""
        data: dict[str, Any] = {"worker_id": worker_id, "max_runs": max_runs}
        if lease_seconds is not None:
            data["lease_seconds"] = lease_seconds
        return Call("POST", "/extraction-runs/claim", _claimed, body=data)

    @method
    def release_extraction_run(
        run_id: str, *, worker_id: str | None = None
    ) -> Call[ExtractionRunDetail]:
        """Hand a claimed run back to the queue (pending again)."""
        data = {"worker_id": worker_id} if worker_id is not None else {}
        return Call("POST", f"/extraction-runs/{run_id}/release", _RUN, body=data)

    # export

    @method
    def export_extraction_runs(out: IO[bytes], **options: Unpack[ExtractionRunExport]) -> Download:
        """Stream `GET /extraction-runs/export` (`format` ndjson or csv) into `out`."""
        return Download.export("/extraction-runs/export", out, options)

    @iterator
    def iter_export_extraction_runs(
        **filters: Unpack[ExtractionRunFilters],
    ) -> Lines[ExtractionRunDetail]:
        """Every matching extraction run in full, streamed (NDJSON) rather than paged."""
        return Lines.export("/extraction-runs/export", _RUN, filters)
