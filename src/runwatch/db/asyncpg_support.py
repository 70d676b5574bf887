"""asyncpg's side of PostgreSQL: rows sent as one array.

Used by `PostgresDialect` (dialect.py); nothing here knows SQLite.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import JSON, Table

# --- rows as one array of table rows, for many-row statements ---------------------


def records_insert(table: Table, columns: Sequence[str]) -> str:
    """`INSERT … SELECT` of the rows in `$1`, an array of the table's own row type.

    The statement text is the same for any number of rows (prepared once per
    connection), and `unnest` yields the rows in their order. Columns left
    out of `columns` get their defaults: the values the array carries for
    them are never read.
    """
    names = ", ".join(columns)
    return f"INSERT INTO {table.name} ({names}) SELECT {names} FROM unnest($1::{table.name}[])"


def table_records(table: Table, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """Each row as a tuple of every column of `table`, in order (None where absent).

    The driver encodes an array of tuples in C with one type check per row; an
    array per column costs it a check per value, most of the Python time of a
    large batch. The tuples follow the table's column order, which must be the
    database's (tests/migrations checks it); JSON goes as its text.
    """
    names = [column.name for column in table.columns]
    records = [tuple(map(row.get, names)) for row in rows]
    json_at = [i for i, column in enumerate(table.columns) if isinstance(column.type, JSON)]
    if not json_at:
        return records
    encoded = []
    for record in records:
        values = list(record)
        for i in json_at:
            if values[i] is not None:
                values[i] = json.dumps(values[i])
        encoded.append(tuple(values))
    return encoded
