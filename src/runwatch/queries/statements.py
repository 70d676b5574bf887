"""Statements built once per shape and run with bind parameters.

Building a SQLAlchemy construct and working out its cache key costs more
Python than running it. A query's *shape* (which filters are present, the
sort, whether a cursor is given, how a time window splits into rollup
segments) takes few values; its *values* (names, times, limits) take many.
So each construct is built once per shape with `bindparam`s in place of the
values, kept here, and executed with a parameter dict; SQLAlchemy then finds
its compiled form by the construct's memoised cache key.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class StatementCache:
    """Constructs by shape, least recently used first out."""

    def __init__(self, maxsize: int = 1024) -> None:
        self.maxsize = maxsize
        self._by_shape: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, shape: Hashable, build: Callable[[], T]) -> T:
        found = self._by_shape.get(shape)
        if found is not None:
            self._by_shape.move_to_end(shape)
            return found
        built = build()
        self._by_shape[shape] = built
        if len(self._by_shape) > self.maxsize:
            self._by_shape.popitem(last=False)
        return built


STATEMENTS = StatementCache()
