"""Concrete paths before templated ones, as OpenAPI matches them: `/runs/export` is not a run id.

`/runs/{run_id}` also matches `/runs/export`, `/runs/errors` and `/runs/batch`
(and `/extraction-runs/{run_id}` the claim, compare and export paths). The
router tries routes in order, so a method the concrete path does not serve
fell through to the templated route: `PATCH /runs/export` updated a run with
the id `export`, and a 405 named the templated route's methods in `Allow`. The
OpenAPI rule is that a concrete path is matched before a templated one, so
that path is one resource, with only its own methods; this route class makes
the router agree.

`DirectRoutes` runs the GET routes that need only their request (the lists and
the summary) without the router, once the router has chosen them for a path.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_dependant
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send


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


Check = Callable[[Request], Awaitable[None]]


def _request_only(dependant: Dependant) -> bool:
    """What FastAPI gives a call of this shape is the request, and nothing else."""
    return (
        dependant.request_param_name is not None
        and inspect.iscoroutinefunction(dependant.call)
        and not (
            dependant.path_params
            or dependant.query_params
            or dependant.header_params
            or dependant.cookie_params
            or dependant.body_params
            or dependant.dependencies
            or dependant.websocket_param_name
            or dependant.http_connection_param_name
            or dependant.response_param_name
            or dependant.background_tasks_param_name
            or dependant.security_scopes_param_name
        )
    )


def _adds_dependencies(routes: Iterable[Any], known: tuple[Any, ...]) -> bool:
    """Some included router adds a dependency beyond the `known` ones (or it cannot be told)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is None:
            continue
        context = getattr(route, "include_context", None)
        if context is None:
            return True
        added = [*getattr(context, "dependencies", [None]), *included.dependencies]
        if any(getattr(d, "dependency", None) not in known for d in added):
            return True
        if _adds_dependencies(included.routes, known):
            return True
    return False


class DirectRoutes:
    """Run a GET route that needs only its request straight from its path, without the router.

    For such a route (the lists, whose query model they read themselves), all
    that FastAPI's routing and dependency solving do per request (trying each
    route's pattern, building the dependency graph's values) costs more than a
    quarter of a filtered page. Once the router has sent a request for a path
    without parameters to such a route, later GETs of that path run its
    endpoint here: the app's checks first (each an `async def` of the request,
    such as the unknown-parameter check), then the endpoint, with the app's
    exception handlers for what it raises, as the router would. Anything else,
    and every app whose routers add dependencies, goes through the router.
    """

    def __init__(self, app: ASGIApp, *, fastapi: FastAPI) -> None:
        self.app = app
        self.fastapi = fastapi
        self.routes: dict[str, APIRoute] = {}
        # Built with the app's middleware stack, at its first request: its routes are all in.
        self.checks = self._app_checks()
        fastapi.state.direct_routes = self  # to see which paths are run here

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        route = self.routes.get(scope["path"])
        if route is None:
            await self.app(scope, receive, send)
            self._learn(scope)
            return
        scope["route"] = route  # for the request log and metrics, as routing would
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {}
        request = Request(scope, receive, send)
        try:
            for check in self.checks or ():
                await check(request)
            response = await route.endpoint(request)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise  # to ServerErrorMiddleware, as from the router
            if inspect.iscoroutinefunction(handler):
                response = await handler(request, exc)
            else:
                response = await run_in_threadpool(handler, request, exc)
        await response(scope, receive, send)

    def _learn(self, scope: Scope) -> None:
        route = scope.get("route")
        if (
            not isinstance(route, APIRoute)
            or route.path != scope["path"]
            or route.methods != {"GET"}
            or route.param_convertors
            or route.dependencies
            or not _request_only(route.dependant)
        ):
            return
        if self.checks is not None:
            self.routes[scope["path"]] = route

    def _app_checks(self) -> tuple[Check, ...] | None:
        """The app's own dependencies, if each takes only the request and no included router
        adds any; else None, and no route is run here."""
        calls = tuple(d.dependency for d in self.fastapi.router.dependencies)
        if not all(call and _request_only(get_dependant(path="", call=call)) for call in calls):
            return None
        if _adds_dependencies(self.fastapi.router.routes, calls):
            return None
        return calls  # type: ignore[return-value]

    def _handler(self, exc: Exception) -> Callable[..., Any] | None:
        # As Starlette's ExceptionMiddleware: by status for an HTTPException, then by class;
        # a handler of Exception or 500 belongs to ServerErrorMiddleware.
        handlers = self.fastapi.exception_handlers
        if isinstance(exc, HTTPException) and exc.status_code in handlers:
            return None if exc.status_code == 500 else handlers[exc.status_code]
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None
            if cls in handlers:
                return handlers[cls]
        return None
