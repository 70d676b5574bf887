"""405 answers name every method the path serves in `Allow`."""

from __future__ import annotations

import httpx
import pytest

# What each path serves, from the HTTP contract (DESIGN.md), not from the router.
CASES = [
    ("PUT", "/runs", {"GET", "POST"}),
    ("PUT", "/runs/batch", {"POST", "GET", "PATCH", "DELETE"}),  # also /runs/{run_id}
    ("POST", "/runs/run-1", {"GET", "PATCH", "DELETE"}),
    ("DELETE", "/runs/stats/summary", {"GET"}),
    ("PUT", "/extraction-runs", {"GET", "POST"}),
    ("POST", "/extraction-runs/a/compare/b", {"GET"}),
    ("DELETE", "/healthz", {"GET"}),
]


@pytest.mark.parametrize(("method", "path", "allowed"), CASES)
async def test_405_names_every_allowed_method(
    client: httpx.AsyncClient, method: str, path: str, allowed: set[str]
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert set(response.headers["allow"].split(", ")) == allowed
    for other in allowed - {"POST", "PATCH", "DELETE"}:
        assert (await client.request(other, path)).status_code != 405
