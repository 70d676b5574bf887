"""A served app keeps the heap it starts with out of garbage collection; other apps do not."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from runwatch.app import SERVING_GC_THRESHOLD, create_app
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
async def test_a_served_app_freezes_the_heap_it_started_with(
    settings: Settings, collector_restored: tuple[int, int, int]
) -> None:
    app = create_app(settings, serving=True)
    async with app.router.lifespan_context(app):
        # The modules, routes and schemas of the app: tens of thousands of objects.
        assert gc.get_freeze_count() > 10_000
        assert gc.get_threshold() == (SERVING_GC_THRESHOLD, *collector_restored[1:])
        kept = gc.get_freeze_count()
        gc.collect()
        assert gc.get_freeze_count() == kept  # no collection walks or frees them


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
async def test_an_app_built_to_be_embedded_leaves_the_collector_alone(
    settings: Settings, collector_restored: tuple[int, int, int]
) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == collector_restored
