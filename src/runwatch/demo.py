"""Realistic demo data: ~40 layers with skewed popularity, a status mix, errors and costs."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection
from ulid import ULID

from runwatch.db.tables import layer_runs
from runwatch.queries.rollups import record_layer_run_changes


@dataclass(frozen=True)
class Model:
    provider: str
    name: str
    profile: str
    usd_per_m_input: float
    usd_per_m_output: float


# List prices per million tokens, so that costs are consistent with the model named.
MODELS = (
    Model("anthropic", "claude-sonnet-4", "quality", 3.00, 15.00),
    Model("anthropic", "claude-haiku-3.5", "fast", 0.80, 4.00),
    Model("openai", "gpt-4o", "quality", 2.50, 10.00),
    Model("openai", "gpt-4o-mini", "fast", 0.15, 0.60),
    Model("google", "gemini-2.0-flash", "cheap", 0.10, 0.40),
)

_CADENCES = ("nightly", "hourly", "weekly", "daily")
_SUBJECTS = (
    "user",
    "team",
    "project",
    "session",
    "document",
    "ticket",
    "repo",
    "account",
    "channel",
    "meeting",
)
_KINDS = ("reflection", "summary", "insight-mining", "digest")

LAYER_NAMES = tuple(
    f"{_CADENCES[i % 4]}-{_SUBJECTS[i % 10]}-{_KINDS[(i // 10) % 4]}" for i in range(40)
)
if "nightly-user-reflection" not in LAYER_NAMES:  # the layer everyone's examples use
    LAYER_NAMES = ("nightly-user-reflection", *LAYER_NAMES[1:])

_FAILURES = (
    ("RateLimitError", "Rate limit exceeded (429) from provider; retries exhausted"),
    ("TimeoutError", "Model call timed out after 120 s"),
    ("ContextLengthError", "Prompt of 212,431 tokens exceeds the model's context window"),
    ("ValidationError", "Model output did not match the insight schema: missing 'evidence'"),
    ("ProviderError", "Upstream 503 Service Unavailable"),
)


def _weights(n: int, s: float = 1.1) -> list[float]:
    """Zipf-like popularity: the first layers run far more often than the last."""
    return [1.0 / (rank**s) for rank in range(1, n + 1)]


def _errors(rng: random.Random, count: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(count):
        kind, message = rng.choice(_FAILURES)
        out.append(
            {
                "type": kind,
                "message": message,
                "target": f"{rng.choice(_SUBJECTS)}-{rng.randint(1, 5000)}",
                "attempt": rng.randint(1, 3),
            }
        )
    return out


def generate_layer_runs(
    count: int,
    *,
    seed: int = 42,
    end: datetime | None = None,
    days: float = 30.0,
) -> Iterator[dict[str, Any]]:
    """Yield `count` complete `layer_runs` rows started within `days` before `end`."""
    rng = random.Random(seed)
    end = end or datetime.now(UTC)
    span = days * 86400.0
    layer_models = {name: MODELS[i % len(MODELS)] for i, name in enumerate(LAYER_NAMES)}
    layer_versions = {name: rng.randint(1, 4) for name in LAYER_NAMES}
    layers = rng.choices(LAYER_NAMES, weights=_weights(len(LAYER_NAMES)), k=count)
    for layer in layers:
        started_at = end - timedelta(seconds=rng.random() * span)
        version = 1 + int((end - started_at).total_seconds() / span * layer_versions[layer])
        model = layer_models[layer]
        age = (end - started_at).total_seconds()
        roll = rng.random()
        if age < 900 and roll < 0.5:
            status = "running"
        elif roll < 0.82:
            status = "success"
        elif roll < 0.88:
            status = "partial"
        elif roll < 0.94:
            status = "failed"
        else:
            status = "dry"
        matched = max(1, int(rng.lognormvariate(3.0, 0.8)))
        skipped = int(matched * rng.random() * 0.2)
        processed = matched - skipped
        if status == "failed":
            processed = int(processed * rng.random() * 0.5)
        elif status == "running":
            processed = int(processed * rng.random())
        duration = min(3600.0, rng.lognormvariate(4.5, 0.7) * (0.3 + processed / 30))
        tokens_in = tokens_out = 0
        if status != "dry":
            tokens_in = int(processed * rng.uniform(900, 2600))
            tokens_out = int(tokens_in * rng.uniform(0.08, 0.3))
        insights = 0 if status in ("dry", "failed") else int(processed * rng.uniform(0.2, 1.2))
        completed_at = None if status == "running" else started_at + timedelta(seconds=duration)
        errors = None
        if status == "failed":
            errors = _errors(rng, rng.randint(1, 3))
        elif status == "partial":
            errors = _errors(rng, rng.randint(1, 4))
        cost = None
        if status != "running":
            cost = round(
                tokens_in * model.usd_per_m_input / 1e6 + tokens_out * model.usd_per_m_output / 1e6,
                6,
            )
        yield {
            "id": str(ULID.from_datetime(started_at)),
            "layer_name": layer,
            "layer_hash": hashlib.sha256(f"{layer}:{version}".encode()).hexdigest()[:12],
            "status": status,
            "started_at": started_at,
            "completed_at": completed_at,
            "duration_seconds": None if completed_at is None else duration,
            "targets_matched": matched,
            "targets_processed": processed,
            "targets_skipped": skipped,
            "insights_created": insights,
            "model_profile": model.profile,
            "model_provider": model.provider,
            "model_name": model.name,
            "tokens_input": tokens_in,
            "tokens_output": tokens_out,
            "tokens_total": tokens_in + tokens_out,
            "estimated_cost_usd": cost,
            "errors": errors,
            "created_at": completed_at or started_at,
            "updated_at": completed_at or started_at,
        }


async def load_demo_data(conn: AsyncConnection, *, runs: int, seed: int = 42) -> int:
    """Insert `runs` generated layer runs in chunks; returns how many were inserted."""
    chunk: list[dict[str, Any]] = []
    inserted = 0
    for row in generate_layer_runs(runs, seed=seed):
        chunk.append(row)
        if len(chunk) == 5000:
            await _insert_layer_runs(conn, chunk)
            inserted += len(chunk)
            chunk = []
    if chunk:
        await _insert_layer_runs(conn, chunk)
        inserted += len(chunk)
    return inserted


async def _insert_layer_runs(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    await conn.execute(insert(layer_runs), rows)
    await record_layer_run_changes(conn, added=rows)


async def is_empty(conn: AsyncConnection) -> bool:
    return (await conn.execute(select(func.count()).select_from(layer_runs))).scalar_one() == 0
