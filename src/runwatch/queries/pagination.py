"""Keyset pagination: sort specs, opaque cursors and the `(key, id)` seek condition."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Integer, Select, and_, bindparam, or_, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import UnaryExpression

from runwatch.db.dialect import dialect_of
from runwatch.db.types import as_utc
from runwatch.domain import INT32_MAX, check_filter_timestamp
from runwatch.errors import InvalidArgument
from runwatch.queries.statements import STATEMENTS

CURSOR_LOC = ("query", "cursor")
_RUN_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
_INT64 = 2**63 - 1


@dataclass(frozen=True)
class SortSpec:
    """A whitelisted sort: a key column, its direction, and the primary key as tie-break."""

    name: str
    column: ColumnElement[Any]
    id_column: ColumnElement[Any]
    descending: bool
    nullable: bool
    is_time: bool

    @property
    def token(self) -> str:
        return ("-" if self.descending else "") + self.name

    def order_by(self) -> list[UnaryExpression[Any]]:
        return self.order_on(self.column, self.id_column)

    def order_on(
        self, column: ColumnElement[Any], id_column: ColumnElement[Any]
    ) -> list[UnaryExpression[Any]]:
        """This order on other columns holding the key and the id (a subquery's, say)."""
        key = column.desc() if self.descending else column.asc()
        tie = id_column.desc() if self.descending else id_column.asc()
        # Unknown (null) values go last in both directions. Only nullable
        # keys say so: on a NOT NULL column the clause would stop PostgreSQL
        # from reading the index backwards.
        return [key.nulls_last() if self.nullable else key, tie]

    def after(self, *, null_key: bool) -> ColumnElement[bool]:
        """Rows strictly after the bound `(after_value, after_id)` in this order.

        `null_key`: the cursor's row had no value for the key (it sorts last).
        """
        typed_id = bindparam("after_id", type_=self.id_column.type)
        if null_key:
            later_id = self.id_column < typed_id if self.descending else self.id_column > typed_id
            return and_(self.column.is_(None), later_id)
        pair = tuple_(self.column, self.id_column)
        bound = tuple_(bindparam("after_value", type_=self.column.type), typed_id)
        beyond = pair < bound if self.descending else pair > bound
        return or_(beyond, self.column.is_(None)) if self.nullable else beyond


def encode_cursor(sort: SortSpec, value: Any, run_id: str) -> str:
    if isinstance(value, datetime):
        value = {"t": as_utc(value).isoformat()}
    payload = orjson.dumps({"s": sort.token, "v": value, "i": run_id})
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def decode_cursor(cursor: str, sort: SortSpec) -> tuple[Any, str]:
    """Return the `(value, id)` a cursor points after, or raise 422."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
        token, value, run_id = payload["s"], payload["v"], payload["i"]
        if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
            raise TypeError("id")
        if isinstance(value, dict):
            value = check_filter_timestamp(datetime.fromisoformat(value["t"]))
        elif value is not None and (
            not isinstance(value, (int, float))
            or (isinstance(value, float) and not math.isfinite(value))
            or (isinstance(value, int) and abs(value) > _INT64)
        ):
            raise TypeError("value")
        if isinstance(value, bool):
            raise TypeError("value")
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
        raise InvalidArgument.at(CURSOR_LOC, "not a cursor issued by this server") from exc
    if token != sort.token:
        raise InvalidArgument.at(
            CURSOR_LOC, f"the cursor was issued for sort '{token}', not '{sort.token}'"
        )
    if (value is None and not sort.nullable) or (
        value is not None and isinstance(value, datetime) != sort.is_time
    ):
        raise InvalidArgument.at(CURSOR_LOC, "not a cursor issued by this server")
    if (
        isinstance(sort.column.type, Integer)
        and value is not None
        and (not isinstance(value, int) or abs(value) > INT32_MAX)
    ):
        raise InvalidArgument.at(CURSOR_LOC, "not a cursor issued by this server")
    return value, run_id


@dataclass(frozen=True)
class Page:
    """Rows as dicts of the page statement's columns (`keys`, in their order), the total apart."""

    rows: Sequence[Mapping[str, Any]]
    next_cursor: str | None
    total: int | None = None
    keys: tuple[str, ...] = ()


TOTAL_LABEL = "_total"


def page_values(
    params: dict[str, Any],
    spec: SortSpec,
    *,
    limit: int,
    offset: int = 0,
    cursor: str | None = None,
) -> tuple[dict[str, Any], bool | None]:
    """The bind values of a page (`limit + 1` rows), and `null_key` of its cursor (None: none)."""
    values = dict(params, page_limit=limit + 1)
    null_key: bool | None = None
    if cursor is not None:
        value, run_id = decode_cursor(cursor, spec)
        null_key = value is None
        values["after_id"] = run_id
        if not null_key:
            values["after_value"] = value
    if offset:
        values["page_offset"] = offset
    return values, null_key


def page_query(
    query: Select[Any], spec: SortSpec, *, null_key: bool | None, offset: bool = False
) -> Select[Any]:
    """`query` from the cursor on (see `SortSpec.after`), in order, `page_limit` rows."""
    if null_key is not None:
        query = query.where(spec.after(null_key=null_key))
    query = query.order_by(*spec.order_by()).limit(bindparam("page_limit", type_=Integer))
    if offset:
        query = query.offset(bindparam("page_offset", type_=Integer))
    return query


async def fetch_page(
    conn: AsyncConnection,
    *,
    shape: Hashable | None,
    build: Callable[[], tuple[Select[Any], Select[Any] | None]],
    params: dict[str, Any],
    spec: SortSpec,
    limit: int,
    offset: int = 0,
    cursor: str | None = None,
) -> Page:
    """One page in `spec` order, by offset or after a keyset cursor.

    `build` makes the filtered query and, optionally, a one-value count
    statement, both with bind parameters (`params` holds their values); it runs
    once per `shape` (see `statements.py`), or every time when `shape` is None.
    Fetches `limit + 1` rows to know whether there is a next page; the cursor
    of the next page is the `(sort key, id)` of the last row returned. The
    count rides along as a scalar subquery evaluated once, so page and total
    take one round trip; only an empty page runs it on its own.
    """
    values, null_key = page_values(params, spec, limit=limit, offset=offset, cursor=cursor)

    def page_statements() -> tuple[Select[Any], Select[Any] | None, tuple[str, ...]]:
        query, total = build()
        keys = tuple(str(column.key) for column in query.selected_columns)
        if total is not None:  # the last column: the rows' dicts end before it
            query = query.add_columns(total.scalar_subquery().label(TOTAL_LABEL))
        return page_query(query, spec, null_key=null_key, offset=bool(offset)), total, keys

    if shape is None:  # values built into the statement: nothing to keep
        query, total, keys = page_statements()
        found: Sequence[Sequence[Any]] = list(await conn.execute(query, values))
    else:
        query, total, keys = STATEMENTS.get(
            ("page", shape, spec.token, null_key, bool(offset)), page_statements
        )
        found = await dialect_of(conn).fetch_rows(conn, query, values)
    counted = None
    if total is not None:
        counted = int(found[0][-1]) if found else int(await conn.scalar(total, values) or 0)
    rows = [dict(zip(keys, row)) for row in found[:limit]]  # noqa: B905 (without the total)
    next_cursor = None
    if len(found) > limit:
        last = rows[-1]
        next_cursor = encode_cursor(spec, last[spec.name], last["id"])
    return Page(rows=rows, next_cursor=next_cursor, total=counted, keys=keys)
