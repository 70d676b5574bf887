"""The routes every kind of run has, made from its description: list, export, get, delete.

`add_run_reads(router, kind, …)` adds `GET ""`, `GET /export` and
`GET /{run_id}` to a kind's router. Each is served through `serve_read`
(ETags, 304s, encoded answers, replicas) and `queries/runs.py`; what differs
between kinds is in `runwatch.kinds.RunKind`, and what only one kind does is
passed in (a narrower list, extra detail fields). `add_run_delete` adds
`DELETE /{run_id}` with the kind's own delete (what goes with a run differs).

This module does not use postponed annotations: the routes' parameter types
are the kind's own query models, which FastAPI reads from the signature.
"""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.api.deps import (
    Paging,
    RunIdPath,
    WriteConn,
    check_paging,
    check_window,
    parse_statuses,
)
from runwatch.api.export import EXPORT_RESPONSES, export_kind, export_response
from runwatch.api.query_models import parse_query, query_parameters
from runwatch.api.reads import NOT_MODIFIED_RESPONSE, ReadContext, encode_json, serve_read
from runwatch.kinds import RunKind
from runwatch.queries.export import export_query
from runwatch.queries.pagination import Page
from runwatch.queries.runs import RunFilter, get_run, list_runs, sort_spec
from runwatch.schemas.common import problem_responses

# A list narrowed by what only one kind filters on: an answer, or None for the shared list.
NarrowedList = Callable[[Request, Any, RunFilter, Paging], Awaitable[Response] | None]
# A run's detail answer from its stored row.
DetailBody = Callable[[ReadContext, Mapping[str, Any]], Awaitable[bytes]]


@dataclass(frozen=True)
class ReadDocs:
    """The descriptions of a kind's read routes, as OpenAPI shows them."""

    list: str
    export: str
    detail: str


def run_filter(kind: RunKind, query: Any) -> RunFilter:
    """The filter a list or export query asks for; 422 on an unknown status or a reversed
    window."""
    window = check_window(query.since, query.until)
    return RunFilter.where(
        statuses=parse_statuses(query.status, kind.statuses),
        since=window.since,
        until=window.until,
        **{name: getattr(query, name) for name in kind.filter_fields},
    )


def page_json(kind: RunKind, page: Page, paging: Paging) -> bytes:
    """A page of runs' body, encoded from its rows (its schema is `kind.page_model`)."""
    keys = kind.list_keys
    # A page of the kind's list columns is already what the answer holds, in its order.
    runs = page.rows
    if page.keys != keys:
        runs = [{key: row[key] for key in keys} for row in page.rows]
    return encode_json(
        {
            "runs": runs,
            "total": page.total,
            "offset": paging.offset,
            "limit": paging.limit,
            "next_cursor": page.next_cursor,
        }
    )


def add_run_reads(
    router: APIRouter,
    kind: RunKind,
    *,
    docs: ReadDocs,
    narrowed_list: NarrowedList | None = None,
    detail_model: type[BaseModel] | None = None,
    detail_body: DetailBody | None = None,
    detail_moves_with_time: bool = False,
) -> None:
    """Add the kind's list, export and detail routes to `router`.

    `detail_moves_with_time`: the detail holds fields that change as time
    passes (whether a run is stuck), so its tag moves in steps of
    `RUNWATCH_STATS_ETAG_SECONDS`.
    """
    label = kind.label
    responses = {**NOT_MODIFIED_RESPONSE, **problem_responses(422, 503)}
    export = export_kind(kind)

    async def detail_of(read: ReadContext, row: Mapping[str, Any]) -> bytes:
        return encode_json({key: row[key] for key in kind.detail_keys})

    body_of = detail_body or detail_of

    # The hottest read: its query model is read in one validation (see query_models.py).
    @router.get(
        "",
        response_model=kind.page_model,
        summary=f"List {label}s",
        description=docs.list,
        responses=responses,
        openapi_extra=query_parameters(kind.list_query),
    )
    async def list_kind_runs(request: Request) -> Response:
        query: Any = parse_query(kind.list_query, request)
        settings = request.app.state.settings
        paging = check_paging(settings, offset=query.offset, limit=query.limit, cursor=query.cursor)
        filters = run_filter(kind, query)
        if narrowed_list is not None:
            narrowed = narrowed_list(request, query, filters, paging)
            if narrowed is not None:
                return await narrowed

        async def work(read: ReadContext) -> bytes:
            # Totals from rollups count purged runs too: they start at the horizon.
            horizon = await read.purged_before() if kind.rollup_totals is not None else None
            page = await list_runs(
                read.conn,
                kind,
                filters=filters,
                sort=query.sort,
                limit=paging.limit,
                offset=paging.offset,
                cursor=paging.cursor,
                with_total=True,
                purge_horizon=horizon,
            )
            return page_json(kind, page, paging)

        return await serve_read(request, work, versioned=kind.versioned)

    # A concrete path, not a run id, whatever the order (see runwatch/routing.py).
    @router.get(
        "/export",
        response_class=StreamingResponse,
        summary=f"Export {label}s as NDJSON or CSV",
        description=docs.export,
        responses={**EXPORT_RESPONSES, **problem_responses(422, 503)},
    )
    async def export_kind_runs(
        request: Request,
        query: Annotated[kind.export_query, Query()],  # type: ignore[name-defined]
    ) -> StreamingResponse:
        filters = run_filter(kind, query)
        statement = export_query(
            kind,
            filters,
            sort_spec(kind, query.sort),
            fields=export.fields,
            dialect=request.app.state.engines.dialect,
            format=query.format,
            csv_lines=export.flat_csv,
        )
        return await export_response(
            request,
            kind=export,
            query=statement,
            format=query.format,
            filename=kind.path.strip("/"),
        )

    @router.get(
        "/{run_id}",
        response_model=detail_model or kind.detail_model,
        summary=f"One {label}",
        description=docs.detail,
        responses={**NOT_MODIFIED_RESPONSE, **problem_responses(404, 422, 503)},
    )
    async def get_kind_run(request: Request, run_id: RunIdPath) -> Response:
        async def work(read: ReadContext) -> bytes:
            return await body_of(read, await get_run(read.conn, kind, run_id))

        settings = request.app.state.settings
        window = settings.stats_etag_seconds if detail_moves_with_time else 0
        return await serve_read(request, work, window_seconds=window, versioned=kind.versioned)


def add_run_delete(
    router: APIRouter,
    kind: RunKind,
    *,
    delete: Callable[[AsyncConnection, str], Awaitable[None]],
    description: str,
) -> None:
    """Add `DELETE /{run_id}`: `delete(conn, run_id)` in the request's transaction, then 204."""
    article = "an" if kind.label[0] in "aeiou" else "a"

    @router.delete(
        "/{run_id}",
        status_code=status.HTTP_204_NO_CONTENT,
        summary=f"Delete {article} {kind.label}",
        description=description,
        responses=problem_responses(404, 422, 503),
    )
    async def delete_kind_run(conn: WriteConn, run_id: RunIdPath) -> Response:
        await delete(conn, run_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)
