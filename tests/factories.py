"""Request bodies for tests, with sensible defaults that a test overrides."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

_counter = itertools.count(1)

BASE_TIME = datetime(2026, 1, 23, 3, 0, tzinfo=UTC)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def layer_run(
    *,
    started_at: datetime | None = None,
    duration: float | None = 150.0,
    status: str = "success",
    **overrides: Any,
) -> dict[str, Any]:
    """A `POST /runs` body; `duration=None` or status running leaves it uncompleted."""
    n = next(_counter)
    started = started_at or BASE_TIME + timedelta(minutes=n)
    body: dict[str, Any] = {
        "id": f"run-{n:06d}",
        "layer_name": "nightly-user-reflection",
        "layer_hash": "abc123",
        "status": status,
        "started_at": iso(started),
        "targets_matched": 12,
        "targets_processed": 10,
        "targets_skipped": 2,
        "insights_created": 8,
        "model_profile": "quality",
        "model_provider": "anthropic",
        "model_name": "claude-sonnet-4",
        "tokens_input": 12000,
        "tokens_output": 3000,
        "estimated_cost_usd": 0.081,
    }
    if status != "running" and duration is not None:
        body["completed_at"] = iso(started + timedelta(seconds=duration))
    body.update(overrides)
    return body
