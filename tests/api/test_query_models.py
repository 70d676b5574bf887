"""A query model read by `parse_query` answers and is documented as FastAPI reads it."""

# No postponed annotations: FastAPI reads the scratch routes' parameter types from their
# signatures.
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI, Query, Request
from pydantic import BaseModel

from runwatch.api.query_models import parse_query, query_parameters
from runwatch.schemas.extraction_runs import ExtractionRunListQuery
from runwatch.schemas.layer_runs import LayerRunListQuery

MODELS = [LayerRunListQuery, ExtractionRunListQuery]


def both_readings(model: type[BaseModel]) -> FastAPI:
    """`/fastapi` reads `model` as FastAPI does; `/ours` as the list routes do."""
    app = FastAPI()

    @app.get("/fastapi")
    async def by_fastapi(query: Annotated[model, Query()]) -> Any:  # type: ignore[valid-type]
        return query.model_dump(mode="json")

    @app.get("/ours", openapi_extra=query_parameters(model))
    async def by_us(request: Request) -> Any:
        return parse_query(model, request).model_dump(mode="json")

    return app


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_parameters_are_documented_as_fastapi_documents_them(model: type[BaseModel]) -> None:
    paths = both_readings(model).openapi()["paths"]
    ours = paths["/ours"]["get"]["parameters"]
    assert ours == paths["/fastapi"]["get"]["parameters"]
    assert [p["name"] for p in ours] == list(model.model_fields)


QUERIES = [
    "",
    "limit=20&offset=40",
    "status=failed,partial&sort=-started_at&limit=5",
    "limit=5&limit=7",  # repeated: the last one counts
    "since=2026-01-02T03:04:05Z&until=2026-01-03",
    "since=2026-01-02T03:04:05%2B05:30",
    "limit=",
    "limit=abc&offset=-1",
    "sort=sideways",
    "since=yesterday",
    "since=1969-12-31T23:59:59Z",
    "cursor=" + "x" * 1025,
    "stuck=maybe",
    "stuck=true&error_fingerprint=0123456789abcdef",
    "error_fingerprint=XYZ",
    "layer_name=&prompt_id=",
    "layer_name=%00&prompt_id=%00",
    "layer_name=%ED%A0%80",  # a lone surrogate, as UTF-8 bytes
    "document_name=" + "d" * 501,
    "unknown=1&limit=2",
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("query", QUERIES)
async def test_parse_query_answers_as_fastapi_does(model: type[BaseModel], query: str) -> None:
    transport = httpx.ASGITransport(app=both_readings(model))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        theirs = await client.get(f"/fastapi?{query}")
        ours = await client.get(f"/ours?{query}")
    assert ours.status_code == theirs.status_code
    if theirs.status_code == 422:
        # Every error, with where it is, what it is and how it reads.
        fields = ("loc", "type", "msg")
        expected = [{k: e[k] for k in fields} for e in theirs.json()["detail"]]
        assert [{k: e[k] for k in fields} for e in ours.json()["detail"]] == expected
    else:
        assert ours.json() == theirs.json()


async def test_the_last_of_a_repeated_parameter_counts_and_a_bad_one_is_named() -> None:
    transport = httpx.ASGITransport(app=both_readings(LayerRunListQuery))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        repeated = await client.get("/ours?limit=5&limit=7")
        bad = await client.get("/ours?limit=abc&offset=-1")
    assert repeated.status_code == 200
    assert repeated.json()["limit"] == 7
    assert bad.status_code == 422
    assert [e["loc"] for e in bad.json()["detail"]] == [["query", "offset"], ["query", "limit"]]
