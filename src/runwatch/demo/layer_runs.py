"""Demo layer runs: ~40 layers with skewed popularity, a status mix, errors and costs."""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection
from ulid import ULID

from runwatch.db.tables import layer_runs
from runwatch.queries.operator_rollups import record_operator_changes
from runwatch.queries.rollup_upkeep import record_layer_run_changes


@dataclass(frozen=True)
class Model:
    provider: str
    name: str
    profile: str
    usd_per_m_input: float
    usd_per_m_output: float

    def cost_usd(self, tokens_input: int, tokens_output: int) -> float:
        """What the tokens cost at list price, to the micro-dollar."""
        return round(
            tokens_input * self.usd_per_m_input / 1e6 + tokens_output * self.usd_per_m_output / 1e6,
            6,
        )


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

# Failures as they arrive: the same few causes, with the numbers and ids that
# vary from one occurrence to the next (error groups fold them together).
_FAILURES: tuple[tuple[str, Callable[[random.Random], str]], ...] = (
    (
        "RateLimitError",
        lambda r: (
            f"Rate limit exceeded (429) for request {uuid.UUID(int=r.getrandbits(128))}; "
            f"retried {r.randint(2, 5)} times"
        ),
    ),
    ("TimeoutError", lambda r: f"Model call timed out after {r.choice([60, 90, 120])} s"),
    (
        "ContextLengthError",
        lambda r: (
            f"Prompt of {r.randint(200_001, 260_000):,} tokens exceeds the model's "
            "context window of 200,000"
        ),
    ),
    (
        "ValidationError",
        lambda r: (
            "Model output did not match the insight schema: missing "
            f"'{r.choice(['evidence', 'subject', 'confidence'])}' in item {r.randint(0, 40)}"
        ),
    ),
    (
        "ProviderError",
        lambda r: f"Upstream 503 Service Unavailable (trace {r.getrandbits(64):016x})",
    ),
)
# The long tail behind them: rarer failures of one step of a pipeline, each
# kind in each step its own group, the first ones far more frequent.
_TAIL_SHARE = 0.15
_TAIL_STEPS = (
    "load-targets",
    "fetch-context",
    "build-prompt",
    "parse-output",
    "dedupe-insights",
    "store-insights",
    "notify",
)
_TAIL_KINDS = (
    ("KeyError", "no field {field} in record {n}"),
    ("ToolError", "tool call {n} returned an empty result"),
    ("DatabaseError", "deadlock detected on row {n}, transaction rolled back"),
    ("PermissionError", "access denied to {field} of {subject}-{n}"),
    ("ConnectionError", "connection reset by peer after {n} ms"),
    ("JSONDecodeError", "unterminated string at line {n} column {n}"),
)
_TAIL = tuple((kind, step, text) for kind, text in _TAIL_KINDS for step in _TAIL_STEPS)
_TAIL_WEIGHTS = tuple(1.0 / rank for rank in range(1, len(_TAIL) + 1))
# A run stuck in `running` every so often: its worker died hours ago.
_STUCK_EVERY = 1500
# Layer versions: two or three in each month of data (a prompt or model change
# every week or two).
_VERSION_DAYS = 30.0


def _weights(n: int, s: float = 1.1) -> list[float]:
    """Zipf-like popularity: the first layers run far more often than the last."""
    return [1.0 / (rank**s) for rank in range(1, n + 1)]


def _errors(rng: random.Random, count: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(count):
        if rng.random() < _TAIL_SHARE:
            kind, step, text = rng.choices(_TAIL, weights=_TAIL_WEIGHTS)[0]
            field = rng.choice(("evidence", "subject", "confidence", "owner"))
            detail = text.format(field=f"'{field}'", n=rng.randint(1, 99_999), subject="user")
            message = f"Step {step} failed: {detail}"
        else:
            kind, make = rng.choice(_FAILURES)
            message = make(rng)
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
    # Versions per layer, numbered in order of use; the busiest layer also has a
    # newest one that fails more often and runs slower. They come from their own
    # generator, so that chunks generated with different seeds agree on them.
    per_month = random.Random(f"versions of {len(LAYER_NAMES)} layers")
    months = max(1, round(days / _VERSION_DAYS))
    layer_versions = {name: per_month.randint(2, 3) * months for name in LAYER_NAMES}
    regressed = LAYER_NAMES[0]
    layers = rng.choices(LAYER_NAMES, weights=_weights(len(LAYER_NAMES)), k=count)
    for index, layer in enumerate(layers):
        started_at = end - timedelta(seconds=rng.random() * span)
        versions = layer_versions[layer]
        version = versions - int((end - started_at).total_seconds() / span * versions)
        # Deployed four days ago, so that a week's window holds it and the one before.
        worse = layer == regressed and (end - started_at).total_seconds() < 4 * 86400
        if worse:
            version = versions + 1
        model = layer_models[layer]
        age = (end - started_at).total_seconds()
        roll = rng.random()
        stuck = index % _STUCK_EVERY == _STUCK_EVERY - 1 and age > 6 * 3600
        if stuck or (age < 900 and roll < 0.5):
            status = "running"
        elif roll < (0.55 if worse else 0.82):
            status = "success"
        elif roll < (0.65 if worse else 0.88):
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
        if worse:
            duration = min(3600.0, duration * 1.8)
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
        cost = None if status == "running" else model.cost_usd(tokens_in, tokens_out)
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


async def load_demo_data(
    conn: AsyncConnection,
    *,
    runs: int,
    seed: int = 42,
    progress: Callable[[int], object] | None = None,
) -> int:
    """Insert `runs` generated layer runs in chunks; returns how many were inserted.

    `progress(n)` is called after each chunk with the number of runs it held.
    """
    chunk: list[dict[str, Any]] = []
    inserted = 0
    for row in generate_layer_runs(runs, seed=seed):
        chunk.append(row)
        if len(chunk) == 5000:
            await _insert_layer_runs(conn, chunk)
            inserted += len(chunk)
            if progress is not None:
                progress(len(chunk))
            chunk = []
    if chunk:
        await _insert_layer_runs(conn, chunk)
        inserted += len(chunk)
        if progress is not None:
            progress(len(chunk))
    return inserted


async def _insert_layer_runs(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    await conn.execute(insert(layer_runs), rows)
    await record_layer_run_changes(conn, added=rows)
    await record_operator_changes(conn, added=rows)


async def is_empty(conn: AsyncConnection) -> bool:
    return (await conn.execute(select(func.count()).select_from(layer_runs))).scalar_one() == 0
