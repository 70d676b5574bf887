"""The client's methods for the operator's questions: error groups, layer versions, regressions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TypedDict, Unpack

from runwatch.client.calls import Call, CursorPaging, Pages, params
from runwatch.client.methods import iterator, method
from runwatch.schemas.operator import (
    ErrorGroup,
    ErrorGroupPage,
    ErrorGroupSort,
    RegressionList,
    VersionCompare,
    VersionList,
)


class Window(TypedDict, total=False):
    """The runs that started in a window: `days` back from `until` (or now), or from `since`."""

    days: int
    since: datetime | str
    until: datetime | str


class ErrorGroupFilters(Window, total=False):
    """The window, filters and sort of `GET /runs/errors`."""

    layer_name: str
    status: str | Sequence[str]
    model_name: str
    layer_hash: str
    sort: ErrorGroupSort


class ErrorGroupQuery(ErrorGroupFilters, CursorPaging, total=False):
    """Everything `GET /runs/errors` takes."""


def _groups_of(page: ErrorGroupPage) -> list[ErrorGroup]:
    return page.groups


class OperatorMethods:
    """What fails and since which version, for `RunwatchClient` and `AsyncRunwatchClient`."""

    @method
    def list_error_groups(**query: Unpack[ErrorGroupQuery]) -> Call[ErrorGroupPage]:
        """One page of `GET /runs/errors`: the errors of the window grouped by fingerprint."""
        return Call("GET", "/runs/errors", ErrorGroupPage.model_validate_json, params(**query))

    @iterator
    def iter_error_groups(
        *, page_size: int = 100, **filters: Unpack[ErrorGroupFilters]
    ) -> Pages[ErrorGroupPage, ErrorGroup]:
        """Every error group of the window, page after page by `next_cursor`."""
        parse = ErrorGroupPage.model_validate_json
        return Pages.listing("/runs/errors", parse, _groups_of, page_size, filters)

    @method
    def list_layer_versions(layer_name: str, **window: Unpack[Window]) -> Call[VersionList]:
        """`GET /runs/stats/versions`: one row per `layer_hash` of the layer."""
        query = params(layer_name=layer_name, **window)
        return Call("GET", "/runs/stats/versions", VersionList.model_validate_json, query)

    @method
    def compare_layer_versions(
        layer_name: str, a: str, b: str, **window: Unpack[Window]
    ) -> Call[VersionCompare]:
        """`GET /runs/stats/versions/compare`: versions `a` and `b`, differences b - a."""
        query = params(layer_name=layer_name, a=a, b=b, **window)
        return Call(
            "GET", "/runs/stats/versions/compare", VersionCompare.model_validate_json, query
        )

    @method
    def list_regressions(
        *, layer_name: str | None = None, **window: Unpack[Window]
    ) -> Call[RegressionList]:
        """`GET /runs/stats/regressions`: newest versions significantly worse than before."""
        query = params(layer_name=layer_name, **window)
        return Call("GET", "/runs/stats/regressions", RegressionList.model_validate_json, query)
