"""The extraction runs' summary: counts, cost, tokens, mean quality and latency percentiles."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.domain import EXTRACTION_RUN_STATUSES
from runwatch.queries import extraction_runs as repo
from runwatch.queries.runs import RunFilter
from runwatch.scoring import percentile


@dataclass
class _Group:
    """The runs of one prompt, one config, or all of them, as the summary rows are folded in."""

    by_status: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(EXTRACTION_RUN_STATUSES, 0)
    )
    cost_usd: float = 0.0
    tokens_input: int = 0
    tokens_output: int = 0
    # Per metric, its sum and how many runs have it.
    sums: dict[str, list[float]] = field(
        default_factory=lambda: {name: [0.0, 0] for name in repo.SUMMED_METRICS}
    )
    latencies: list[float] = field(default_factory=list)

    def add(self, row: Any) -> None:
        """One `groups` row of `repo.summary_rows`."""
        runs = int(row.runs)
        self.by_status[row.status] += runs
        self.cost_usd += float(row.cost_usd)
        self.tokens_input += int(row.tokens_input)
        self.tokens_output += int(row.tokens_output)
        for name, acc in self.sums.items():
            acc[0] += float(getattr(row, f"sum_{name}"))
            acc[1] += int(getattr(row, f"count_{name}"))

    def answer(self) -> dict[str, Any]:
        """The group as the summary shows it: means and percentiles over no value are null."""
        out: dict[str, Any] = {"runs": sum(self.by_status.values()), **self.by_status}
        out.update(
            cost_usd=round(self.cost_usd, 9),
            tokens_input=self.tokens_input,
            tokens_output=self.tokens_output,
        )
        for name, (total, count) in self.sums.items():
            out[f"mean_{name}"] = round(total / count, 9) if count else None
        for p in (50, 95):
            value = percentile(self.latencies, p)
            out[f"p{p}_latency_ms"] = None if value is None else round(value, 6)
        return out


def _fold(rows: Iterable[Any]) -> tuple[_Group, dict[str, _Group], dict[str, _Group]]:
    """The summary rows as totals, per prompt and per config."""
    totals = _Group()
    by_prompt: dict[str, _Group] = {}
    by_config: dict[str, _Group] = {}
    for row in rows:
        groups = (
            by_prompt.setdefault(row.prompt_id, _Group()),
            by_config.setdefault(row.config_id, _Group()),
            totals,
        )
        for group in groups:
            if row.part == "latencies":
                group.latencies.append(row.latency_ms)
            else:
                group.add(row)
    return totals, by_prompt, by_config


async def summarize_extraction_runs(
    conn: AsyncConnection,
    *,
    days: int,
    prompt_id: str | None = None,
    config_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The `GET /extraction-runs/stats/summary` body: runs created in the last `days` days.

    Counts and sums come from one grouped query per (prompt, config, status).
    Latency percentiles are computed here from the fetched values (see
    `runwatch.scoring.percentile`), so both dialects give the same numbers.
    """
    since = (now or datetime.now(UTC)) - timedelta(days=days)
    filters = RunFilter.where(prompt_id=prompt_id, config_id=config_id, since=since)
    totals, by_prompt, by_config = _fold(await repo.summary_rows(conn, filters))
    total = totals.answer()
    return {
        "period_days": days,
        "since": since,
        "total_runs": total["runs"],
        "pending_runs": total["pending"],
        "running_runs": total["running"],
        "completed_runs": total["completed"],
        "failed_runs": total["failed"],
        "total_cost_usd": total["cost_usd"],
        "total_tokens_input": total["tokens_input"],
        "total_tokens_output": total["tokens_output"],
        "total_tokens": total["tokens_input"] + total["tokens_output"],
        "mean_precision": total["mean_precision"],
        "mean_recall": total["mean_recall"],
        "mean_f1": total["mean_f1"],
        "p50_latency_ms": total["p50_latency_ms"],
        "p95_latency_ms": total["p95_latency_ms"],
        "by_prompt": {k: v.answer() for k, v in sorted(by_prompt.items())},
        "by_config": {k: v.answer() for k, v in sorted(by_config.items())},
    }
