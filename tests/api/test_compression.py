"""Gzip on JSON and assets: compressed answers have their own strong ETag and revalidate."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from tests.factories import layer_run

GZIP = {"Accept-Encoding": "gzip"}
IDENTITY = {"Accept-Encoding": "identity"}


@dataclass
class Raw:
    status_code: int
    headers: httpx.Headers
    content: bytes


async def raw_get(client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> Raw:
    """GET without httpx decoding the body, so the bytes on the wire can be checked."""
    request = client.build_request("GET", path, headers=headers)
    response = await client.send(request, stream=True)
    body = b"".join([chunk async for chunk in response.aiter_raw()])
    await response.aclose()
    return Raw(response.status_code, response.headers, body)


async def test_json_is_gzipped_with_a_tag_of_its_own(client: httpx.AsyncClient) -> None:
    start = datetime.now(UTC) - timedelta(hours=2)
    runs = [layer_run(started_at=start + timedelta(minutes=i)) for i in range(15)]
    assert (await client.post("/runs/batch", json={"runs": runs})).status_code in (200, 201)

    plain = await raw_get(client, "/runs?limit=15", IDENTITY)
    packed = await raw_get(client, "/runs?limit=15", GZIP)
    assert plain.status_code == packed.status_code == 200
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == "gzip"
    assert "accept-encoding" in packed.headers["vary"].lower()
    assert json.loads(gzip.decompress(packed.content)) == json.loads(plain.content)
    assert len(packed.content) < len(plain.content)

    plain_tag, packed_tag = plain.headers["etag"], packed.headers["etag"]
    assert not plain_tag.startswith("W/")
    assert not packed_tag.startswith("W/")
    assert packed_tag != plain_tag, "a gzip body and an identity body share no strong tag"
    assert packed_tag == plain_tag[:-1] + '-gzip"'

    # Each copy revalidates with its own tag, and the 304 names that copy.
    again = await raw_get(client, "/runs?limit=15", {**GZIP, "If-None-Match": packed_tag})
    assert again.status_code == 304
    assert again.headers["etag"] == packed_tag
    again = await raw_get(client, "/runs?limit=15", {**IDENTITY, "If-None-Match": plain_tag})
    assert again.status_code == 304
    assert again.headers["etag"] == plain_tag

    # A write makes both copies stale.
    assert (await client.delete(f"/runs/{runs[0]['id']}")).status_code == 204
    fresh = await raw_get(client, "/runs?limit=15", {**GZIP, "If-None-Match": packed_tag})
    assert fresh.status_code == 200
    assert fresh.headers["etag"] != packed_tag
    assert fresh.headers["etag"].endswith('-gzip"')


async def test_small_answers_and_unknown_tags_are_left_alone(client: httpx.AsyncClient) -> None:
    small = await raw_get(client, "/healthz", GZIP)
    assert small.status_code == 200
    assert "content-encoding" not in small.headers
    stale = await raw_get(client, "/runs", {**GZIP, "If-None-Match": '"0-stale-gzip"'})
    assert stale.status_code == 200


async def test_dashboard_assets_are_gzipped_and_revalidate(client: httpx.AsyncClient) -> None:
    plain = await raw_get(client, "/ui/js/main.js", IDENTITY)
    packed = await raw_get(client, "/ui/js/main.js", GZIP)
    assert packed.headers["content-encoding"] == "gzip"
    assert gzip.decompress(packed.content) == plain.content
    assert packed.headers["etag"] != plain.headers["etag"]
    again = await raw_get(
        client, "/ui/js/main.js", {**GZIP, "If-None-Match": packed.headers["etag"]}
    )
    assert again.status_code == 304
    assert again.headers["etag"] == packed.headers["etag"]
    plain_again = await raw_get(
        client, "/ui/js/main.js", {**IDENTITY, "If-None-Match": plain.headers["etag"]}
    )
    assert plain_again.status_code == 304


async def test_streamed_exports_go_out_uncompressed(client: httpx.AsyncClient) -> None:
    # Compressing an export of a million runs cost the server more CPU than the export.
    runs = [layer_run() for _ in range(40)]
    assert (await client.post("/runs/batch", json={"runs": runs})).status_code in (200, 201)
    for fmt, lines in (("ndjson", 40), ("csv", 41)):
        exported = await raw_get(client, f"/runs/export?format={fmt}", GZIP)
        assert exported.status_code == 200
        assert "content-encoding" not in exported.headers
        assert len(exported.content) > 500  # large enough that JSON would have been gzipped
        assert exported.content.count(b"\n") == lines
