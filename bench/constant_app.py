"""A minimal FastAPI app answering a constant ~1 KB JSON: the HTTP stack's ceiling.

Served by uvicorn with one worker, like `runwatch serve`, it measures what
FastAPI, uvicorn and the load generator cost with no database and no work:
`/bytes` answers pre-encoded bytes, `/dict` returns a dict that FastAPI
serialises the default way on every request.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Response


def _payload() -> dict[str, Any]:
    """Shaped like a stats summary, about 1 KB once encoded."""
    layers = {
        f"nightly-layer-{i:02d}": {"runs": 1000 + i, "insights": 5000 + i, "failed": i}
        for i in range(14)
    }
    return {
        "period_days": 7,
        "total_runs": 42_000,
        "successful_runs": 38_000,
        "failed_runs": 1_200,
        "dry_runs": 2_800,
        "total_insights": 156_000,
        "total_tokens": 450_000_000,
        "total_cost_usd": 1350.25,
        "by_layer": layers,
    }


PAYLOAD = _payload()
ENCODED = json.dumps(PAYLOAD, separators=(",", ":")).encode()

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.get("/bytes")
async def constant_bytes() -> Response:
    return Response(ENCODED, media_type="application/json")


@app.get("/dict")
async def constant_dict() -> dict[str, Any]:
    return PAYLOAD
