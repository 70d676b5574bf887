"""Streamed exports of runs as NDJSON or CSV, read in keyset chunks with constant memory.

An export is the list query of its kind (the same filters and sort) read
chunk after chunk with the keyset cursor of `fetch_page`, each chunk on a
read connection held only while it is read. The first chunk is read before
the answer starts, so that a bad cursor or an unavailable database is still a
problem+json answer; a failure later breaks the stream off (the client sees
an incomplete chunked body, never a truncated file that looks whole).

NDJSON: one detail object per line, the same JSON as `GET /…/{id}`.
CSV: one header line, then one line per run; see `docs/client.md` for the
columns: nested objects are flattened (`tokens.input`, `metrics.f1`) and
free-form JSON (`errors`, `output`, `expected`, `metrics`) is kept as JSON
text in one cell.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

import orjson
from fastapi import Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from runwatch.api.deps import READ_SOURCE_HEADER, open_read_connection, release_connection
from runwatch.queries.export import ExportQuery
from runwatch.queries.pagination import Page
from runwatch.schemas.common import rfc3339

ExportFormat = Literal["ndjson", "csv"]
FormatQuery = Annotated[
    ExportFormat,
    Query(
        alias="format",
        description="`ndjson`: one detail object per line; `csv`: a header line, then one "
        "flattened line per run.",
    ),
]
MEDIA_TYPES = {"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}
EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The runs, streamed.",
        "content": {
            "application/x-ndjson": {"schema": {"type": "string"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}

# Rows per chunk: start small (a row may carry up to a few MiB of JSON), then
# size each chunk from the bytes per row seen so far, for about CHUNK_BYTES.
FIRST_CHUNK = 200
MAX_CHUNK = 1000
CHUNK_BYTES = 512 * 1024


def _same(row: Mapping[str, Any]) -> Mapping[str, Any]:
    return row


@dataclass(frozen=True)
class CsvColumn:
    """One CSV column: its header and how to take it from a detail's JSON form."""

    name: str
    path: tuple[str, ...]
    as_json: bool = False


def csv_columns(model: type[BaseModel], *, json_fields: Sequence[str] = ()) -> list[CsvColumn]:
    """Every field of `model` in order; a nested model becomes one column per field."""
    columns: list[CsvColumn] = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for sub in annotation.model_fields:
                columns.append(CsvColumn(f"{name}.{sub}", (name, sub)))
        else:
            columns.append(CsvColumn(name, (name,), as_json=name in json_fields))
    return columns


def _cell(data: Mapping[str, Any], column: CsvColumn) -> Any:
    value: Any = data
    for part in column.path:
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        return ""
    if column.as_json or isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return value


def _is_time(annotation: Any) -> bool:
    if annotation is datetime:
        return True
    return any(_is_time(arg) for arg in get_args(annotation))


@dataclass(frozen=True)
class ExportKind:
    """What one kind of run exports: its detail model's fields, how a row gives them, its CSV."""

    model: type[BaseModel]
    columns: Sequence[CsvColumn]
    prepare: Callable[[Mapping[str, Any]], Mapping[str, Any]] = _same

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self.model.model_fields)

    @property
    def time_fields(self) -> tuple[str, ...]:
        return tuple(
            name for name, info in self.model.model_fields.items() if _is_time(info.annotation)
        )


class _Encoder:
    """Rows as detail objects, without building a model per row (the hot path of an export).

    The values are the row's own; timestamps are written by the models' own
    `rfc3339`, so a line is exactly what `GET /…/{id}` answers.
    """

    def __init__(self, kind: ExportKind, format: ExportFormat) -> None:
        self.kind = kind
        self.format = format
        self.fields = kind.fields

    def header(self) -> bytes:
        if self.format != "csv":
            return b""
        return self._csv_lines([[c.name for c in self.kind.columns]])

    def details(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        prepare, fields, times = self.kind.prepare, self.fields, self.kind.time_fields
        out = []
        for row in rows:
            data = prepare(row)
            detail = {name: data[name] for name in fields}
            for name in times:
                value = detail[name]
                if value is not None:
                    detail[name] = rfc3339(value)
            out.append(detail)
        return out

    def encode(self, rows: Sequence[Mapping[str, Any]]) -> bytes:
        if self.format == "ndjson" and rows and "line" in rows[0]:
            # Written by the database (see queries/export.py): only join them.
            return "".join([row["line"] + "\n" for row in rows]).encode()
        details = self.details(rows)
        if self.format == "ndjson":
            return b"".join([orjson.dumps(d) + b"\n" for d in details])
        columns = self.kind.columns
        return self._csv_lines([[_cell(d, c) for c in columns] for d in details])

    @staticmethod
    def _csv_lines(rows: list[list[Any]]) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        return buffer.getvalue().encode()


async def _read_chunk(
    request: Request, query: ExportQuery, *, limit: int, cursor: str | None
) -> tuple[str, Page]:
    """One chunk on a read connection held only while it is read."""
    source, conn = await open_read_connection(request)
    try:
        async with conn.begin():
            page = await query.chunk(conn, limit=limit, cursor=cursor)
    finally:
        await release_connection(conn, source)
    return source, page


async def export_response(
    request: Request,
    *,
    kind: ExportKind,
    query: ExportQuery,
    format: ExportFormat,
    filename: str,
) -> StreamingResponse:
    """Read the first chunk now, then stream the rest, each on a fresh read connection."""
    encoder = _Encoder(kind, format)
    source, first = await _read_chunk(request, query, limit=FIRST_CHUNK, cursor=None)
    head = encoder.header() + encoder.encode(first.rows)

    async def body() -> AsyncIterator[bytes]:
        yield head
        page: Page = first
        rows_seen, bytes_seen = len(first.rows), len(head)
        while page.next_cursor is not None:
            per_row = max(bytes_seen // max(rows_seen, 1), 1)
            size = max(1, min(MAX_CHUNK, CHUNK_BYTES // per_row))
            _, page = await _read_chunk(request, query, limit=size, cursor=page.next_cursor)
            data = encoder.encode(page.rows)
            rows_seen += len(page.rows)
            bytes_seen += len(data)
            yield data

    extension = "ndjson" if format == "ndjson" else "csv"
    return StreamingResponse(
        body(),
        media_type=MEDIA_TYPES[format],
        headers={
            "Content-Disposition": f'attachment; filename="{filename}.{extension}"',
            READ_SOURCE_HEADER: source,
        },
    )
