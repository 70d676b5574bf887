"""The OpenAPI document as readers see it, and Swagger UI and ReDoc served without a network.

Operation ids, tag descriptions, problem+json error answers, response headers,
request examples and the configured limits are all set here, in one place,
rather than on every route.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from runwatch.config import Settings
from runwatch.routing import lacking_methods
from runwatch.security import BEARER_SCHEME, SECURITY_SCHEME, is_guarded

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = "/docs-assets"
PROBLEM_REF = "#/components/schemas/Problem"

TAGS: list[dict[str, str]] = [
    {
        "name": "layer runs",
        "description": "Executions of the named layers of a scheduled reflection pipeline: "
        "record them, list and filter them, and read the summary and timeseries "
        "dashboards poll (with `ETag` and `If-None-Match`).",
    },
    {
        "name": "extraction runs",
        "description": "A prompt and model config run over one document and scored against "
        "its expected output: queue them, let workers claim and complete them, compare "
        "prompts and configs.",
    },
    {
        "name": "operator",
        "description": "The questions an operator asks: why runs fail (error groups by "
        "fingerprint), whether a new layer version made things worse (versions, their "
        "comparison with significance tests, regressions found without asking).",
    },
    {
        "name": "health",
        "description": "Liveness (`/healthz`) and readiness (`/readyz`: the database answers "
        "and its schema is current); open without an API key.",
    },
    {
        "name": "operations",
        "description": "Prometheus metrics for the people who run the service.",
    },
]

# (method, path) → operation id. Ids read as names, as generated clients call them.
OPERATION_IDS: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "getLiveness",
    ("GET", "/readyz"): "getReadiness",
    ("GET", "/metrics"): "getMetrics",
    ("GET", "/runs"): "listLayerRuns",
    ("POST", "/runs"): "createLayerRun",
    ("POST", "/runs/batch"): "createLayerRuns",
    ("GET", "/runs/stats/summary"): "getLayerRunSummary",
    ("GET", "/runs/stats/timeseries"): "getLayerRunTimeseries",
    ("GET", "/runs/export"): "exportLayerRuns",
    ("GET", "/extraction-runs/export"): "exportExtractionRuns",
    ("GET", "/runs/errors"): "listErrorGroups",
    ("GET", "/runs/stats/versions"): "listLayerVersions",
    ("GET", "/runs/stats/versions/compare"): "compareLayerVersions",
    ("GET", "/runs/stats/regressions"): "listRegressions",
    ("GET", "/runs/{run_id}"): "getLayerRun",
    ("PATCH", "/runs/{run_id}"): "updateLayerRun",
    ("DELETE", "/runs/{run_id}"): "deleteLayerRun",
    ("GET", "/extraction-runs"): "listExtractionRuns",
    ("POST", "/extraction-runs"): "createExtractionRun",
    ("POST", "/extraction-runs/claim"): "claimExtractionRuns",
    ("GET", "/extraction-runs/compare"): "compareExtractionGroups",
    ("GET", "/extraction-runs/stats/summary"): "getExtractionRunSummary",
    ("GET", "/extraction-runs/{run_id}"): "getExtractionRun",
    ("PATCH", "/extraction-runs/{run_id}"): "updateExtractionRun",
    ("DELETE", "/extraction-runs/{run_id}"): "deleteExtractionRun",
    ("POST", "/extraction-runs/{run_id}/release"): "releaseExtractionRun",
    ("GET", "/extraction-runs/{run_id}/compare/{other_id}"): "compareExtractionRuns",
}


OPERATOR_PATHS = (
    "/runs/errors",
    "/runs/stats/versions",
    "/runs/stats/versions/compare",
    "/runs/stats/regressions",
)


def operation_id(route: APIRoute) -> str:
    """FastAPI's `generate_unique_id_function`: the id from the table, else one from the path."""
    method = sorted(route.methods or {"GET"})[0]
    known = OPERATION_IDS.get((method, route.path_format))
    if known is not None:
        return known
    # A route not in the table still gets a readable, unique id: GET /runs/export → getRunsExport.
    words = [w for w in re.split(r"[^A-Za-z0-9]+", route.path_format) if w]
    return method.lower() + "".join(w[:1].upper() + w[1:] for w in words)


# One example per request body, keyed by operation id; a test posts each one.
REQUEST_EXAMPLES: dict[str, dict[str, Any]] = {
    "createLayerRun": {
        "layer_name": "nightly-user-reflection",
        "layer_hash": "f80e8ec52431",
        "status": "success",
        "started_at": "2026-11-22T01:53:16Z",
        "completed_at": "2026-11-22T01:53:57Z",
        "targets_matched": 26,
        "targets_processed": 25,
        "targets_skipped": 1,
        "insights_created": 14,
        "model_profile": "quality",
        "model_provider": "anthropic",
        "model_name": "claude-sonnet-4",
        "tokens_input": 17153,
        "tokens_output": 4379,
        "estimated_cost_usd": 0.117144,
    },
    "createLayerRuns": {
        "runs": [
            {
                "layer_name": "nightly-user-reflection",
                "layer_hash": "f80e8ec52431",
                "status": "failed",
                "started_at": "2026-11-22T02:00:00Z",
                "completed_at": "2026-11-22T02:00:41Z",
                "errors": [{"type": "ProviderError", "message": "Upstream 503", "attempt": 3}],
            },
            {
                "layer_name": "weekly-team-digest",
                "layer_hash": "0c1d2e3f4a5b",
                "status": "running",
                "started_at": "2026-11-22T02:01:00Z",
            },
        ]
    },
    "updateLayerRun": {
        "status": "partial",
        "completed_at": "2026-11-22T02:03:30Z",
        "targets_processed": 20,
        "insights_created": 9,
        "errors": [{"type": "ValidationError", "target": "channel-3218", "attempt": 1}],
    },
    "createExtractionRun": {
        "prompt_id": "invoice-extract-v3",
        "config_id": "sonnet-t0",
        "document_name": "invoice-0042.pdf",
        "expected": {"vendor": "ACME GmbH", "total": "1249.00", "currency": "EUR"},
    },
    "claimExtractionRuns": {"worker_id": "extractor-1", "max_runs": 5, "lease_seconds": 300},
    "updateExtractionRun": {
        "status": "completed",
        "worker_id": "extractor-1",
        "output": {"vendor": "ACME GmbH", "total": "1249.00", "currency": "EUR"},
        "metrics": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "latency_ms": 5210.0},
        "tokens": {"input": 2210, "output": 140},
        "cost_usd": 0.00873,
    },
    "releaseExtractionRun": {"worker_id": "extractor-1"},
}

_HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {
        "description": "The request's id (the one sent, if it was a safe one, else a new "
        "one); also in logs and in problem bodies as `request_id`.",
        "schema": {"type": "string"},
    },
    "ETag": {
        "description": "Tag of this answer; send it back in `If-None-Match` for a `304` while "
        "nothing has changed.",
        "schema": {"type": "string"},
    },
    "Location": {"description": "Path of the run created.", "schema": {"type": "string"}},
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "WWW-Authenticate": {
        "description": "How to authenticate: `Bearer`.",
        "schema": {"type": "string"},
    },
}


_ERROR_DESCRIPTIONS = {
    401: "No API key, or one that is unknown or revoked.",
    403: "The API key's scope does not allow this request.",
}


def app_options() -> dict[str, Any]:
    """`FastAPI(...)` arguments: readable ids, tag descriptions, no CDN-loading doc pages."""
    return {
        "docs_url": None,
        "redoc_url": None,
        "generate_unique_id_function": operation_id,
        "openapi_tags": TAGS,
    }


def _header_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/headers/{name}"}


def _set_maximum(schema: dict[str, Any], maximum: int) -> None:
    """Declare `maximum` on an integer schema, or the integer branch of `anyOf`."""
    for branch in [schema, *schema.get("anyOf", ())]:
        if branch.get("type") == "integer":
            branch["maximum"] = min(branch.get("maximum", maximum), maximum)


def _declare_limits(operation: dict[str, Any], path: str, settings: Settings) -> None:
    """The configured limits, so that a schema-valid request is not refused (ST202)."""
    days = settings.max_stats_days
    # The daily timeseries and the operator's windows reach further back.
    if path in ("/runs/stats/timeseries", *OPERATOR_PATHS):
        days = max(settings.max_stats_days, settings.max_daily_timeseries_days)
    limits = {"limit": settings.max_page_size, "offset": settings.max_offset, "days": days}
    for parameter in operation.get("parameters", ()):
        if parameter.get("in") == "query" and parameter["name"] in limits:
            _set_maximum(parameter["schema"], limits[parameter["name"]])


def _declare_body_limits(schemas: dict[str, Any], settings: Settings) -> None:
    batch = schemas.get("LayerRunBatch", {}).get("properties", {}).get("runs")
    if batch is not None and batch.get("type") == "array":
        batch["maxItems"] = min(
            batch.get("maxItems", settings.max_batch_size), settings.max_batch_size
        )
    for name in ("ClaimRequest", "ExtractionRunUpdate"):
        lease = schemas.get(name, {}).get("properties", {}).get("lease_seconds")
        if lease is not None:
            _set_maximum(lease, settings.extraction_max_lease_seconds)


def _declare_shadowed_methods(
    paths: dict[str, Any], lacking: Mapping[tuple[str, str], Sequence[str]]
) -> None:
    """A 405 where a templated path's parameter can spell a concrete path that lacks the method.

    `PATCH /runs/export` is `/runs/export`, which is not a run (see
    runwatch/routing.py: `lacking_methods`), so `PATCH /runs/{run_id}` can answer 405.
    """
    for (path, method), others in lacking.items():
        operation = paths.get(path, {}).get(method)
        if operation is not None:
            names = ", ".join(f"`{other}`" for other in others)
            about = f"The path named another resource ({names}) without this method."
            operation.setdefault("responses", {}).setdefault("405", {"description": about})


def shape_openapi(
    schema: dict[str, Any],
    settings: Settings,
    lacking: Mapping[tuple[str, str], Sequence[str]],
) -> dict[str, Any]:
    """Keys, problem answers, headers, examples and limits on FastAPI's generated document.

    `lacking`: the methods templated routes leave to concrete paths that lack
    them (`routing.lacking_methods`).
    """
    _declare_shadowed_methods(schema.get("paths", {}), lacking)
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    components["headers"] = copy.deepcopy(_HEADERS)
    components.setdefault("securitySchemes", {})[SECURITY_SCHEME] = BEARER_SCHEME
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if is_guarded(path):
                operation["security"] = [{SECURITY_SCHEME: []}]
            not_modified = "304" in operation.get("responses", {})
            for status, response in operation.get("responses", {}).items():
                headers = response.setdefault("headers", {})
                headers["X-Request-ID"] = _header_ref("X-Request-ID")
                code = int(status) if status.isdigit() else 0
                if code >= 400:
                    if response.get("description") in (None, "", "Error."):
                        response["description"] = _ERROR_DESCRIPTIONS.get(code, "Error.")
                    response["content"] = {
                        "application/problem+json": {"schema": {"$ref": PROBLEM_REF}}
                    }
                if code == 503:
                    headers["Retry-After"] = _header_ref("Retry-After")
                if code == 401:
                    headers["WWW-Authenticate"] = _header_ref("WWW-Authenticate")
                if code in (201, 202) and method == "post":
                    headers["Location"] = _header_ref("Location")
                if code in (200, 304) and not_modified:
                    headers["ETag"] = _header_ref("ETag")
            _declare_limits(operation, path, settings)
            example = REQUEST_EXAMPLES.get(operation.get("operationId", ""))
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None and example is not None:
                body["example"] = copy.deepcopy(example)
    _declare_body_limits(schemas, settings)
    # Every error is a Problem now: FastAPI's own validation error shapes are unused.
    text = repr(schema["paths"])
    for name in ("HTTPValidationError", "ValidationError"):
        if f"#/components/schemas/{name}'" not in text:
            schemas.pop(name, None)
    return schema


# The pages may load nothing but from this server: ReDoc's sidebar links a logo
# on its makers' host, which the browser is told not to fetch. Swagger UI starts
# from an inline script and both inject their styles.
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def _static_dir() -> Path:
    """Swagger UI's and ReDoc's files, as the fastapi-offline package ships them."""
    return Path(str(resources.files("fastapi_offline"))) / "static"


class _DocsAssets(StaticFiles):
    async def get_response(self, path: str, scope: dict) -> Response:  # type: ignore[override]
        response = await super().get_response(path, scope)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def install_api_docs(app: FastAPI, settings: Settings) -> None:
    """The shaped OpenAPI document, and `/docs` and `/redoc` that load nothing from elsewhere."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = shape_openapi(generate(), settings, lacking_methods(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    openapi_url = app.openapi_url or "/openapi.json"

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            # The validator badge would send the schema to a public service.
            swagger_ui_parameters={"validatorUrl": None},
        )
        page.headers["Content-Security-Policy"] = DOCS_CONTENT_SECURITY_POLICY
        return page

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = DOCS_CONTENT_SECURITY_POLICY
        return page

    app.add_route(DOCS_URL, swagger_ui, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_route(REDOC_URL, redoc, methods=["GET", "HEAD"], include_in_schema=False)
    app.mount(ASSETS_URL, _DocsAssets(directory=_static_dir()), name="docs-assets")
