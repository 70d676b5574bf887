"""`/docs` (Swagger UI) and `/redoc` (ReDoc) render every operation with no other host.

Chromium gets every request to another host refused, and the test fails if one
reached the network: the docs must work on a machine without internet.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.browser.conftest import VIEWPORT, Server, start_server

HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory, chromium: str) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("api-docs"), demo_runs=20)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def summaries(docs_server: Server) -> list[str]:
    schema = httpx.get(f"{docs_server.base_url}/openapi.json", timeout=10).json()
    return [
        operation["summary"]
        for item in schema["paths"].values()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


@pytest.fixture
def offline_page(browser: Any, docs_server: Server) -> Iterator[tuple[Any, list[str]]]:
    """A page that may only reach the runwatch server; other requests are refused and kept."""
    own = urlsplit(docs_server.base_url).netloc
    elsewhere: list[str] = []
    context = browser.new_context(viewport=VIEWPORT)

    def route(route: Any) -> None:
        url = route.request.url
        if urlsplit(url).scheme in ("http", "https") and urlsplit(url).netloc != own:
            elsewhere.append(url)
            route.abort()
        else:
            route.continue_()

    context.route("**/*", route)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page, elsewhere
    finally:
        context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def test_pages_name_no_other_host(docs_server: Server) -> None:
    for path in ("/docs", "/redoc"):
        page = httpx.get(f"{docs_server.base_url}{path}", timeout=10)
        policy = page.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy
        assert "img-src 'self' data:;" in policy
        html = page.text
        assert "/docs-assets/" in html
        for scheme in ("http://", "https://", "//fonts", "cdn."):
            assert scheme not in html, (path, scheme)


def test_swagger_ui_renders_every_operation_offline(
    offline_page: tuple[Any, list[str]], docs_server: Server, summaries: list[str]
) -> None:
    page, elsewhere = offline_page
    page.goto(f"{docs_server.base_url}/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    shown = page.locator(".opblock-summary-description").all_inner_texts()
    assert sorted(shown) == sorted(summaries)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any(p.replace("\u200b", "") == "/runs/{run_id}" for p in paths), paths
    # The tag descriptions are shown too.
    assert "Executions of the named layers" in page.content()
    assert elsewhere == []


def test_redoc_renders_every_operation_offline(
    offline_page: tuple[Any, list[str]], docs_server: Server, summaries: list[str]
) -> None:
    page, elsewhere = offline_page
    page.goto(f"{docs_server.base_url}/redoc")
    page.wait_for_selector("h2:has-text('List layer runs')", timeout=30_000)
    headings = {text.strip() for text in page.locator("h2").all_inner_texts()}
    missing = [summary for summary in summaries if summary not in headings]
    assert missing == []
    assert "application/problem+json" in page.content()
    assert elsewhere == []
