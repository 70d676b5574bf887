"""The results table: rows, ratios, machine facts, and rendering as text, Markdown and JSON."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def load_average() -> str:
    """The 1/5/15-minute load averages: other work on the machine shows up here."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (with uncommitted changes)" if dirty else "")


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if value >= 100:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


COLUMNS = (
    ("dialect", "dialect"),
    ("endpoint", "endpoint"),
    ("connections", "conns"),
    ("requests_per_second", "req/s"),
    ("p50_ms", "p50 ms"),
    ("p99_ms", "p99 ms"),
    ("db_p50_ms", "DB p50 ms"),
    ("db_p99_ms", "DB p99 ms"),
    ("http_over_db", "p50 / DB p50"),
    ("of_ceiling", "req/s / ceiling"),
    ("errors", "errors"),
    ("driver", "driver"),
)


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """p50 over the database's own p50, and req/s over the constant endpoint's at the same
    concurrency (the pre-encoded one: the most the HTTP stack can do)."""
    ceiling = {
        r["connections"]: r["requests_per_second"]
        for r in rows
        if r["endpoint"] == "constant 1 KB JSON, pre-encoded bytes"
    }
    for r in rows:
        db = r.get("db_p50_ms")
        r["http_over_db"] = round(r["p50_ms"] / db, 1) if db and r.get("p50_ms") else None
        top = ceiling.get(r["connections"])
        r["of_ceiling"] = (
            f"{100 * r['requests_per_second'] / top:.0f}%"
            if top and r.get("requests_per_second") is not None
            else None
        )


def render_table(rows: list[dict[str, Any]]) -> str:
    header = "| " + " | ".join(title for _, title in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    lines = [header, rule]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(key)) for key, _ in COLUMNS) + " |")
    return "\n".join(lines)


def render_markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    out = [
        f"# runwatch benchmark, {result['date']}",
        "",
        f"- machine: {m['nproc']} cores, {m['memory_gib']} GiB, {m['cpu']}, "
        f"Linux {m['kernel']}, Python {m['python']}",
        f"- commit: `{result['commit']}`",
        f"- load average (1/5/15 min) at start: {result.get('loadavg_start', '?')}, "
        f"at end: {result.get('loadavg_end', '?')} (2 cores: above ~1.5 means other work "
        "competed for the CPU)",
        f"- runs (N): {result['runs']:,}; dialects: {', '.join(result['dialects'])}; "
        f"duration per measurement: {result['duration_s']} s; load driver: {result['driver']}",
        f"- server: `runwatch serve` (one uvicorn worker, log level {result['server_log_level']})",
        "",
    ]
    for d in result["datasets"]:
        mem = d.get("server_memory_kb", {})
        out.append(
            f"- {d['dialect']}: {d['rows']:,} runs; loaded {d['loaded']:,} at "
            f"{d['load_rows_per_second']:,.0f} rows/s ({d['load_seconds']:.1f} s, of which "
            f"indexes and analyse {d['index_seconds']:.1f} s; rollups rebuilt in "
            f"{d.get('rollup_seconds') or 0:.1f} s after it); popular layer "
            f"`{d['popular_layer']}`; deep page at row {d['depth']:,}; server peak RSS "
            f"{mem.get('VmHWM', 0) / 1024:.0f} MB (VmHWM), last {mem.get('VmRSS', 0) / 1024:.0f} MB"
        )
    out += ["", render_table(result["rows"]), ""]
    if result.get("headlines"):
        out += ["## Headlines", ""]
        out += [f"- {h}" for h in result["headlines"]]
        out.append("")
    out += [
        "`DB p50/p99`: the same SQL statements the endpoint ran, captured from the service and "
        "replayed on a bare driver connection (one at a time). `p50 / DB p50`: how many times "
        "the database's own time the request takes end to end. `req/s / ceiling`: req/s as a "
        "share of the constant pre-encoded JSON endpoint at the same concurrency.",
        "",
    ]
    return "\n".join(out)


def write_results(result: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    md = out_dir / f"{stamp}.md"
    js = out_dir / f"{stamp}.json"
    md.write_text(render_markdown(result), encoding="utf-8")
    js.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return md, js
