"""A served app keeps the heap it starts with out of garbage collection; other apps do not."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from runwatch.app import SERVING_GC_THRESHOLD, create_app, create_served_app
from runwatch.cli.parser import build_parser
from runwatch.config import Settings


@pytest.fixture
def collector_restored() -> Iterator[tuple[int, int, int]]:
    """The collector as it was, unfrozen, and put back so after the test."""
    gc.unfreeze()
    threshold = gc.get_threshold()
    yield threshold
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
async def test_a_served_app_freezes_the_heap_it_started_with_until_it_stops(
    settings: Settings, collector_restored: tuple[int, int, int]
) -> None:
    app = create_app(settings, serving=True)
    async with app.router.lifespan_context(app):
        # The modules, routes and schemas of the app: tens of thousands of objects.
        assert gc.get_freeze_count() > 10_000
        assert gc.get_threshold() == (SERVING_GC_THRESHOLD, *collector_restored[1:])
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == collector_restored


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
async def test_an_app_built_to_be_embedded_leaves_the_collector_alone(
    settings: Settings, collector_restored: tuple[int, int, int]
) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == collector_restored


def test_runwatch_serve_and_its_worker_processes_build_served_apps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **_options: served.append(app))
    url = f"sqlite+aiosqlite:///{tmp_path / 'served.db'}"
    # The command itself, without main()'s logging set-up, which outlives the test.
    args = build_parser().parse_args(["--database-url", url, "serve", "--port", "8765"])
    assert args.func(args) == 0
    (app,) = served
    assert app.state.serving is True
    # With --workers, each process builds its app from the environment with this factory.
    monkeypatch.setenv("RUNWATCH_DATABASE_URL", url)
    assert create_served_app().state.serving is True
    assert create_app(Settings(database_url=url)).state.serving is False
