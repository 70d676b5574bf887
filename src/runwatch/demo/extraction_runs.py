"""Demo extraction runs: invoices with ground truth, extracted with realistic mistakes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection
from ulid import ULID

from runwatch.db.tables import extraction_runs
from runwatch.demo.layer_runs import MODELS
from runwatch.scoring import score

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
                        cost_usd=model.cost_usd(tokens_in, tokens_out),
                    )
                    rows.append(run)
    return rows


async def load_demo_extraction_runs(conn: AsyncConnection, *, seed: int = 42) -> int:
    """Insert the demo extraction runs unless there are some already; returns how many."""
    existing = (await conn.execute(select(func.count()).select_from(extraction_runs))).scalar_one()
    if existing:
        return 0
    rows = generate_extraction_runs(seed=seed)
    await conn.execute(insert(extraction_runs), rows)
    return len(rows)
