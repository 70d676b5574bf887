"""Comparisons of extraction runs: two runs field by field, two groups document by document."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.domain import STANDARD_METRICS
from runwatch.errors import InvalidArgument
from runwatch.queries import extraction_runs as repo
from runwatch.scoring import diff_fields, difference
from runwatch.services.extraction_lifecycle import get_extraction_run

# Two F1 scores closer than this are a tie.
F1_TIE = 1e-9


def _metric_order(names: set[str]) -> list[str]:
    standard = [m for m in STANDARD_METRICS if m in names]
    return standard + sorted(names - set(STANDARD_METRICS))


def compare_metrics(
    a: Mapping[str, Any] | None, b: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """One entry per metric on either side: values, `difference` (b - a) and percent of a."""
    a, b = a or {}, b or {}
    out = []
    for name in _metric_order(set(a) | set(b)):
        value_a, value_b = a.get(name), b.get(name)
        delta, percent = difference(value_a, value_b)
        out.append(
            {
                "metric": name,
                "run_a": value_a,
                "run_b": value_b,
                "difference": delta,
                "percent_difference": percent,
            }
        )
    return out


async def compare_extraction_runs(
    conn: AsyncConnection, run_a_id: str, run_b_id: str
) -> dict[str, Any]:
    """Metric by metric and field by field comparison of two runs, in any status."""
    run_a = await get_extraction_run(conn, run_a_id)
    run_b = await get_extraction_run(conn, run_b_id)
    fields = diff_fields(run_a["output"], run_b["output"])
    counts = {"same": 0, "different": 0, "only_in_a": 0, "only_in_b": 0}
    for f in fields:
        counts[f.status] += 1
    return {
        "run_a": dict(run_a),
        "run_b": dict(run_b),
        "metric_comparisons": compare_metrics(run_a["metrics"], run_b["metrics"]),
        "field_differences": [
            {"field": f.field, "status": f.status, "run_a": f.run_a, "run_b": f.run_b}
            for f in fields
            if f.status != "same"
        ],
        "summary": {
            "fields_same": counts["same"],
            "fields_different": counts["different"],
            "fields_only_in_a": counts["only_in_a"],
            "fields_only_in_b": counts["only_in_b"],
        },
    }


@dataclass(frozen=True)
class GroupSide:
    """One side of a group comparison: the runs of a prompt and/or a config."""

    prompt_id: str | None = None
    config_id: str | None = None


def group_sides(
    *,
    a_prompt_id: str | None,
    a_config_id: str | None,
    b_prompt_id: str | None,
    b_config_id: str | None,
) -> tuple[GroupSide, GroupSide]:
    """The two sides to compare; each needs a prompt or a config, and they must differ."""
    a = GroupSide(prompt_id=a_prompt_id, config_id=a_config_id)
    b = GroupSide(prompt_id=b_prompt_id, config_id=b_config_id)
    for name, side in (("a", a), ("b", b)):
        if side.prompt_id is None and side.config_id is None:
            raise InvalidArgument.at(
                ("query", f"{name}_prompt_id"),
                f"give {name}_prompt_id and/or {name}_config_id",
            )
    if a == b:
        raise InvalidArgument.at(("query", "b_prompt_id"), "the two sides are the same")
    return a, b


@dataclass
class _Tally:
    """What the paired documents add up to: metric sums for the means, and F1 outcomes."""

    sums: dict[str, list[float]] = field(default_factory=dict)
    wins_a: int = 0
    wins_b: int = 0
    ties: int = 0
    missing: int = 0

    def add(self, comparisons: list[dict[str, Any]]) -> None:
        """One paired document's metric comparisons (as `compare_metrics` gives them)."""
        f1: dict[str, Any] = {}
        for c in comparisons:
            if c["run_a"] is not None and c["run_b"] is not None:
                acc = self.sums.setdefault(c["metric"], [0.0, 0.0, 0.0])
                acc[0] += c["run_a"]
                acc[1] += c["run_b"]
                acc[2] += 1
            if c["metric"] == "f1":
                f1 = c
        self._f1(f1.get("run_a"), f1.get("run_b"))

    def _f1(self, f1_a: float | None, f1_b: float | None) -> None:
        if f1_a is None or f1_b is None:
            self.missing += 1
        elif abs(f1_a - f1_b) <= F1_TIE:
            self.ties += 1
        elif f1_a > f1_b:
            self.wins_a += 1
        else:
            self.wins_b += 1

    def means(self) -> list[dict[str, Any]]:
        out = []
        for metric in _metric_order(set(self.sums)):
            total_a, total_b, count = self.sums[metric]
            mean_a, mean_b = round(total_a / count, 9), round(total_b / count, 9)
            delta, percent = difference(mean_a, mean_b)
            out.append(
                {
                    "metric": metric,
                    "documents": int(count),
                    "mean_a": mean_a,
                    "mean_b": mean_b,
                    "difference": delta,
                    "percent_difference": percent,
                }
            )
        return out


async def _latest_completed(
    conn: AsyncConnection, side: GroupSide, document_name: str | None
) -> dict[str, Mapping[str, Any]]:
    return await repo.latest_completed_per_document(
        conn, prompt_id=side.prompt_id, config_id=side.config_id, document_name=document_name
    )


async def compare_extraction_groups(
    conn: AsyncConnection,
    *,
    a: GroupSide,
    b: GroupSide,
    document_name: str | None = None,
    max_documents: int,
) -> dict[str, Any]:
    """Pair the latest completed run of each side per document and compare their metrics.

    Means are taken over the paired documents that have the metric on both
    sides, so both means describe the same documents. F1 decides wins: the
    side with the higher F1 wins a document, equal F1 (within 1e-9) is a tie.
    """
    side_a = await _latest_completed(conn, a, document_name)
    side_b = await _latest_completed(conn, b, document_name)
    if len(side_a.keys() | side_b.keys()) > max_documents:
        raise InvalidArgument(
            f"The comparison covers more than {max_documents} documents; narrow it with "
            "document_name.",
        )
    paired = sorted(side_a.keys() & side_b.keys())
    documents = []
    tally = _Tally()
    for name in paired:
        run_a, run_b = side_a[name], side_b[name]
        comparisons = compare_metrics(run_a["metrics"], run_b["metrics"])
        documents.append(
            {
                "document_name": name,
                "run_a": run_a["id"],
                "run_b": run_b["id"],
                "metric_comparisons": comparisons,
            }
        )
        tally.add(comparisons)
    return {
        "a": {"prompt_id": a.prompt_id, "config_id": a.config_id},
        "b": {"prompt_id": b.prompt_id, "config_id": b.config_id},
        "document_name": document_name,
        "documents_compared": len(paired),
        "documents": documents,
        "means": tally.means(),
        "f1": {
            "wins_a": tally.wins_a,
            "wins_b": tally.wins_b,
            "ties": tally.ties,
            "missing": tally.missing,
        },
        "documents_only_in_a": sorted(side_a.keys() - side_b.keys()),
        "documents_only_in_b": sorted(side_b.keys() - side_a.keys()),
    }
