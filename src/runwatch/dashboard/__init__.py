"""The monitoring dashboard: one HTML page at `/` and its static assets under `/ui/`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
ASSETS_PREFIX = "/ui"

# The page reads the API from its own origin and loads nothing from anywhere else;
# the policy makes that a property the browser enforces rather than a convention.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


class _DashboardAssets(StaticFiles):
    """Static files that browsers revalidate, so an upgraded server is seen at once."""

    async def get_response(self, path: str, scope: dict) -> Response:  # type: ignore[override]
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


async def _index(request: Request) -> Response:
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type="text/html; charset=utf-8",
        headers={
            "Cache-Control": "no-cache",
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


def install_dashboard(app: FastAPI) -> None:
    """Serve the page at `/` and its assets at `/ui/`, outside the OpenAPI schema.

    Both are plain Starlette routes, not API operations: they carry no data, so the
    API's query-parameter checks and dependencies do not apply to them.
    """
    app.add_route("/", _index, methods=["GET", "HEAD"], include_in_schema=False)
    app.mount(ASSETS_PREFIX, _DashboardAssets(directory=STATIC_DIR), name="dashboard-assets")
