"""Concrete paths before templated ones, as OpenAPI matches them: `/runs/export` is not a run id.

`/runs/{run_id}` also matches `/runs/export`, `/runs/errors` and `/runs/batch`
(and `/extraction-runs/{run_id}` the claim, compare and export paths). The
router tries routes in order, so a method the concrete path does not serve
fell through to the templated route: `PATCH /runs/export` updated a run with
the id `export`, and a 405 named the templated route's methods in `Allow`. The
OpenAPI rule is that a concrete path is matched before a templated one, so
that path is one resource, with only its own methods; this route class makes
the router agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope


class ConcretePathsFirst(APIRoute):
    """An `APIRoute` whose template does not match the paths of the app's concrete routes."""

    concrete_paths: frozenset[str] = frozenset()

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE and self.concrete_paths:
            path = self.path_format.format(**child_scope.get("path_params", {}))
            if path in self.concrete_paths:
                return Match.NONE, {}
        return match, child_scope


def leaf_routes(routes: Iterable[Any]) -> Iterable[Any]:
    """Every route of the app, those of included routers too."""
    for route in routes:
        included = getattr(route, "original_router", None)  # an included APIRouter
        if included is not None:
            yield from leaf_routes(included.routes)
        else:
            yield route


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (the router names only the first route's)."""
    methods: set[str] = set()
    for route in leaf_routes(request.app.router.routes):
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


def lacking_methods(app: FastAPI) -> dict[tuple[str, str], list[str]]:
    """Per templated route and method: the concrete paths it leaves alone that lack the method.

    A request such as `PATCH /runs/export` is answered 405 by the concrete path,
    so OpenAPI declares that 405 on `PATCH /runs/{run_id}` (see openapi.py).
    """
    served: dict[str, set[str]] = {}
    for route in leaf_routes(app.router.routes):
        served.setdefault(getattr(route, "path", ""), set()).update(getattr(route, "methods", ()))
    lacking: dict[tuple[str, str], list[str]] = {}
    for route in leaf_routes(app.router.routes):
        if isinstance(route, ConcretePathsFirst):
            for method in route.methods:
                paths = sorted(p for p in route.concrete_paths if method not in served[p])
                if paths:
                    lacking[(route.path, method.lower())] = paths
    return lacking


def give_concrete_paths_precedence(app: FastAPI) -> None:
    """Tell each templated route which concrete paths of the app it must leave alone."""
    routes = [r for r in leaf_routes(app.router.routes) if isinstance(r, APIRoute)]
    concrete = {r.path for r in routes if not r.param_convertors}
    for route in routes:
        if isinstance(route, ConcretePathsFirst) and route.param_convertors:
            route.concrete_paths = frozenset(p for p in concrete if route.path_regex.match(p))
