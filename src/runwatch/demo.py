"""Realistic demo data: ~40 layers with skewed popularity, a status mix, errors and costs."""

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


# Extraction runs: prompts of increasing quality, two model configs, a few
# dozen invoices with ground truth. Outputs are the truth with the kinds of
# mistakes extractors make, and the metrics are scored from them for real.
EXTRACTION_PROMPTS = {
    # prompt id: chance that any one field is extracted wrong, or missed
    "invoice-extract-v1": (0.16, 0.10),
    "invoice-extract-v2": (0.08, 0.05),
    "invoice-extract-v3": (0.05, 0.02),
}
EXTRACTION_CONFIGS = {
    # config id: (model, error multiplier, median latency in ms)
    "sonnet-t0": (MODELS[0], 0.8, 5200.0),
    "4o-mini-t0": (MODELS[3], 1.3, 2100.0),
}
_VENDORS = (
    "ACME GmbH",
    "Globex Corp",
    "Initech Ltd",
    "Umbrella BV",
    "Stark Supplies",
    "Wayne Office",
    "Hooli Inc",
    "Soylent SA",
)
_ITEMS = (
    ("PAPER-A4", "A4 paper, 500 sheets", 4.99),
    ("TONER-K", "Black toner cartridge", 79.0),
    ("CHAIR-ERG", "Ergonomic chair", 289.0),
    ("USB-C-2M", "USB-C cable, 2 m", 12.5),
    ("DESK-LAMP", "LED desk lamp", 34.9),
    ("SUPPORT-H", "Support, per hour", 95.0),
)


def _invoice(rng: random.Random, number: int) -> dict[str, Any]:
    lines = []
    for sku, description, price in rng.sample(_ITEMS, rng.randint(1, 4)):
        lines.append(
            {
                "sku": sku,
                "description": description,
                "quantity": rng.randint(1, 12),
                "unit_price": price,
            }
        )
    net = round(sum(line["quantity"] * line["unit_price"] for line in lines), 2)
    rate = rng.choice([0.19, 0.2, 0.21])
    return {
        "vendor": {"name": rng.choice(_VENDORS), "vat_id": f"EU{rng.randint(10**8, 10**9 - 1)}"},
        "invoice_number": f"INV-2026-{number:05d}",
        "issue_date": f"2026-{rng.randint(1, 10):02d}-{rng.randint(1, 28):02d}",
        "currency": rng.choice(["EUR", "EUR", "USD"]),
        "lines": lines,
        "totals": {
            "net": net,
            "tax_rate": rate,
            "tax": round(net * rate, 2),
            "gross": round(net * (1 + rate), 2),
        },
    }


def _mistake(rng: random.Random, value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return round(value * rng.choice([0.1, 10, 1.01, 0.99]), 2) if value else 1
    if isinstance(value, str):
        return rng.choice([value.lower(), value[:-1], value + " ", value.replace("-", "")])
    return value


def _extract(rng: random.Random, value: Any, wrong: float, missed: float) -> Any:
    """The ground truth as an imperfect extractor would return it."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(item, (dict, list)) and rng.random() < missed:
                continue
            out[key] = _extract(rng, item, wrong, missed)
        return out
    if isinstance(value, list):
        items = [_extract(rng, item, wrong, missed) for item in value]
        if len(items) > 1 and rng.random() < missed:
            items.pop(rng.randrange(len(items)))
        return items
    return _mistake(rng, value) if rng.random() < wrong else value


def generate_extraction_runs(
    *, documents: int = 36, seed: int = 42, end: datetime | None = None
) -> list[dict[str, Any]]:
    """`extraction_runs` rows: every prompt and config over `documents` invoices."""
    from runwatch.scoring import score

    rng = random.Random(seed)
    end = end or datetime.now(UTC)
    truths = {f"invoice-{i:03d}.pdf": _invoice(rng, 1000 + i) for i in range(documents)}
    rows: list[dict[str, Any]] = []
    for p_index, (prompt_id, (wrong, missed)) in enumerate(EXTRACTION_PROMPTS.items()):
        newest = p_index == len(EXTRACTION_PROMPTS) - 1
        for config_id, (model, factor, latency_median) in EXTRACTION_CONFIGS.items():
            # Each prompt was evaluated in its own batch, a day or two after the last.
            batch_start = end - timedelta(days=6 - 2 * p_index, hours=rng.uniform(0, 6))
            for d_index, (document, truth) in enumerate(truths.items()):
                repeats = 2 if rng.random() < 0.1 else 1
                for repeat in range(repeats):
                    created = batch_start + timedelta(minutes=d_index * 2 + repeat * 90)
                    run: dict[str, Any] = {
                        "id": str(ULID.from_datetime(created)),
                        "prompt_id": prompt_id,
                        "config_id": config_id,
                        "document_name": document,
                        "created_at": created,
                        "updated_at": created,
                        "expected": truth,
                        "attempts": 0,
                        "output": None,
                        "metrics": None,
                        "metric_precision": None,
                        "metric_recall": None,
                        "metric_f1": None,
                        "metric_latency_ms": None,
                        "cost_usd": None,
                        "tokens_input": None,
                        "tokens_output": None,
                        "error": None,
                        "worker_id": None,
                        "started_at": None,
                        "completed_at": None,
                        "lease_expires_at": None,
                    }
                    # The newest prompt's last documents are still queued or running.
                    tail = newest and d_index >= documents - 4
                    if tail and d_index >= documents - 2:
                        run["status"] = "pending"
                        rows.append(run)
                        continue
                    started = created + timedelta(seconds=rng.uniform(1, 40))
                    run.update(
                        started_at=started, attempts=1, worker_id=f"worker-{rng.randint(1, 4)}"
                    )
                    if tail:
                        run.update(status="running", lease_expires_at=end + timedelta(minutes=5))
                        rows.append(run)
                        continue
                    latency = min(60_000.0, rng.lognormvariate(0, 0.35) * latency_median)
                    completed = started + timedelta(milliseconds=latency)
                    tokens_in = int(rng.uniform(1800, 4200))
                    run.update(completed_at=completed, updated_at=completed, tokens_input=tokens_in)
                    if rng.random() < 0.03:
                        run.update(
                            status="failed",
                            error=rng.choice(
                                [
                                    "RateLimitError: 429 from provider; retries exhausted",
                                    "The model's answer was not valid JSON",
                                    "TimeoutError: no answer within 60 s",
                                ]
                            ),
                        )
                        rows.append(run)
                        continue
                    output = _extract(
                        rng, truth, min(wrong * factor, 0.9), min(missed * factor, 0.9)
                    )
                    tokens_out = int(rng.uniform(250, 700))
                    metrics = score(output, truth).as_metrics()
                    metrics["latency_ms"] = round(latency, 3)
                    run.update(
                        status="completed",
                        output=output,
                        metrics=metrics,
                        metric_precision=metrics["precision"],
                        metric_recall=metrics["recall"],
                        metric_f1=metrics["f1"],
                        metric_latency_ms=metrics["latency_ms"],
                        tokens_output=tokens_out,
                        cost_usd=round(
                            tokens_in * model.usd_per_m_input / 1e6
                            + tokens_out * model.usd_per_m_output / 1e6,
                            6,
                        ),
                    )
                    rows.append(run)
    return rows


async def load_demo_extraction_runs(conn: AsyncConnection, *, seed: int = 42) -> int:
    """Insert the demo extraction runs unless there are some already; returns how many."""
    from runwatch.db.tables import extraction_runs

    existing = (await conn.execute(select(func.count()).select_from(extraction_runs))).scalar_one()
    if existing:
        return 0
    rows = generate_extraction_runs(seed=seed)
    await conn.execute(insert(extraction_runs), rows)
    return len(rows)
