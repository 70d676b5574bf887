"""Dashboard routes: page and assets served, kept out of the API schema, shipped in the wheel."""

from __future__ import annotations

import zipfile
from pathlib import Path

import httpx
import pytest

from runwatch.dashboard import STATIC_DIR

ROOT = Path(__file__).resolve().parents[2]
ASSETS = sorted(p.relative_to(STATIC_DIR).as_posix() for p in STATIC_DIR.rglob("*") if p.is_file())


async def test_the_page_is_served_at_the_root_with_a_strict_policy(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<title>runwatch</title>" in response.text
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "connect-src 'self'" in policy
    assert response.headers["cache-control"] == "no-cache"


async def test_every_asset_is_served_with_its_type(client: httpx.AsyncClient) -> None:
    types = {"css": "text/css", "js": "javascript", "html": "text/html"}
    for name in ASSETS:
        response = await client.get(f"/ui/{name}")
        assert response.status_code == 200, name
        assert types[name.rsplit(".", 1)[1]] in response.headers["content-type"], name
        assert response.content == (STATIC_DIR / name).read_bytes()


async def test_assets_answer_conditional_requests(client: httpx.AsyncClient) -> None:
    first = await client.get("/ui/js/main.js")
    again = await client.get("/ui/js/main.js", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304


async def test_the_page_references_only_its_own_assets(client: httpx.AsyncClient) -> None:
    html = (await client.get("/")).text
    assert "http://" not in html.replace("http://www.w3.org", "")
    assert "https://" not in html
    for name in ASSETS:
        if name.endswith(".js"):
            source = (STATIC_DIR / name).read_text()
            assert "https://" not in source, name
            assert "fetch(" not in source or name == "js/api.js", name


async def test_dashboard_routes_are_not_in_the_openapi_schema(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/" not in paths
    assert not [p for p in paths if p.startswith("/ui")]
    assert "/runs" in paths


async def test_an_unknown_asset_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/ui/js/nope.js")).status_code == 404
    assert (await client.get("/ui/../pyproject.toml")).status_code == 404


@pytest.fixture
def dialect() -> str:
    # Serving files does not depend on the database; one dialect is enough.
    return "sqlite"


def test_the_wheel_ships_the_dashboard(tmp_path: Path) -> None:
    from hatchling.builders.wheel import WheelBuilder

    wheel = next(
        iter(WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"]))
    )
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [a for a in ASSETS if f"runwatch/dashboard/static/{a}" not in names]
    assert missing == []
    assert "runwatch/dashboard/__init__.py" in names
