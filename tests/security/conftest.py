"""Helpers for the security tests: an app over the test database with chosen settings, and keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from runwatch.app import create_app
from runwatch.config import Settings
from runwatch.db.engine import Engines
from runwatch.queries.api_keys import create_api_key


@asynccontextmanager
async def serve(settings: Settings, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client over a fresh app (lifespan run) built from `settings` with `overrides`."""
    app = create_app(settings.model_copy(update=overrides))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://runwatch.test") as c:
            c.app = app  # type: ignore[attr-defined]
            yield c


def app_of(client: httpx.AsyncClient) -> FastAPI:
    return client.app  # type: ignore[attr-defined]


async def new_key(engines: Engines, scope: str, name: str | None = None) -> str:
    async with engines.write.begin() as conn:
        return (await create_api_key(conn, name=name or f"{scope}-key", scope=scope)).token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
