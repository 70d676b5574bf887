"""Health checks: `/healthz` (the process answers) and `/readyz` (database and schema ready)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from runwatch.errors import problem_response
from runwatch.migrate import current_revisions, head_revisions

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The database is reachable and migrated to head",
    responses={503: {"description": "Not ready", "content": {"application/problem+json": {}}}},
)
async def readyz(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    try:
        async with request.app.state.engines.read.connect() as conn:
            await conn.execute(text("SELECT 1"))
            current = await current_revisions(conn)
    except Exception as exc:  # any failure to reach the database means "not ready"
        return problem_response(
            status=503,
            code="unavailable",
            title="Not ready",
            detail=f"The database is unreachable: {type(exc).__name__}.",
            headers={"Retry-After": str(settings.retry_after_seconds)},
        )
    heads = head_revisions()
    if current != heads:
        return problem_response(
            status=503,
            code="unavailable",
            title="Not ready",
            detail=f"The schema is at {sorted(current) or 'nothing'}, not at {sorted(heads)}; "
            "run `runwatch migrate`.",
            headers={"Retry-After": str(settings.retry_after_seconds)},
        )
    return JSONResponse({"status": "ready", "database": "ok", "revision": sorted(current)})
