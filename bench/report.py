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

CONSTANT_BYTES = "constant 1 KB JSON, pre-encoded bytes"
CONSTANT_DICT = "constant 1 KB JSON, dict via FastAPI"
PAGE1 = "GET /runs?limit=20 (page 1)"
FILTERED = "GET /runs?layer_name&status&limit=20 (every layer and status)"
DETAIL = "GET /runs/{id} (1,000 ids)"
SUMMARY_POLLED = "GET /runs/stats/summary?days=30, polled, unchanged data"
SUMMARY_304 = "GET /runs/stats/summary?days=30, If-None-Match (304)"
SUMMARY_FRESH = "GET /runs/stats/summary?days=30, fresh (a write before each)"
BATCH_PREFIX = "POST /runs/batch"
ERRORS = "GET /runs/errors?days=30"
VERSIONS = "GET /runs/stats/versions?layer_name (most frequent layer)"


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
    ("bare_requests_per_second", "bare req/s"),
    ("bare_p50_ms", "bare p50 ms"),
    ("bare_p99_ms", "bare p99 ms"),
    ("of_bare", "req/s ÷ bare"),
    ("cpu_ms", "CPU ms/req"),
    ("statements", "stmts/req"),
    ("errors", "errors"),
    ("driver", "driver"),
)
DIGITS = {"cpu_ms": 3}


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """p50 over the database's own p50, and req/s over the constant endpoint's at the same
    concurrency (the pre-encoded one: the most the HTTP stack can do)."""
    ceiling = {
        r["connections"]: r["requests_per_second"] for r in rows if r["endpoint"] == CONSTANT_BYTES
    }
    for r in rows:
        db = r.get("db_p50_ms")
        # Three significant figures: an answer served from the encoded-answer
        # cache can take a small fraction of the database's time.
        ratio = r["p50_ms"] / db if db and r.get("p50_ms") else None
        r["http_over_db"] = float(f"{ratio:.3g}") if ratio else None
        top = ceiling.get(r["connections"])
        r["of_ceiling"] = (
            f"{100 * r['requests_per_second'] / top:.0f}%"
            if top and r.get("requests_per_second") is not None
            else None
        )
        bare = r.get("bare_requests_per_second")
        r["of_bare"] = f"{100 * r['requests_per_second'] / bare:.0f}%" if bare else None


def render_table(rows: list[dict[str, Any]]) -> str:
    header = "| " + " | ".join(title for _, title in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    lines = [header, rule]
    for r in rows:
        lines.append(
            "| " + " | ".join(_fmt(r.get(key), DIGITS.get(key, 2)) for key, _ in COLUMNS) + " |"
        )
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
        pct = d.get("summary_percentiles")
        if pct:
            out.append(
                f"- {d['dialect']}: `stats/summary?days=30` answered duration p50/p95/p99 of "
                + " / ".join("—" if v is None else f"{v:.1f} s" for v in pct)
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
        "share of the constant pre-encoded JSON endpoint at the same concurrency. `bare`: "
        "the same statements served by a bare FastAPI app on raw asyncpg with orjson "
        "(PostgreSQL only); `req/s ÷ bare`: runwatch's req/s as a share of it. `CPU ms/req`: "
        "process CPU time per call of the app called in-process as an ASGI callable (no "
        "network; SQLite's own work included, PostgreSQL's server not), the mean over many "
        "calls, each fresh (no cache can answer) except the polled and 304 rows; "
        "`stmts/req`: SQL statements per call in that measurement.",
        "",
    ]
    return "\n".join(out)


# The targets of the lean request path, for 1,000,000 runs on PostgreSQL, one worker.
CPU_TARGETS_MS = {FILTERED: 1.0, DETAIL: 0.4, SUMMARY_FRESH: 1.5, SUMMARY_304: 0.12}
SQLITE_CPU_FACTOR = 1.5
OF_BARE_TARGET = 0.70
LATENCY_OVER_BARE_TARGET = 1.5
SUMMARY_FRESH_P50_TARGET_MS = 3.0
POLL_304_OF_CEILING_TARGET = 0.70
POLLED_OF_CEILING_TARGET = 0.50
BATCH_TARGETS = {1: 10_000, 16: 20_000}
PEAK_RSS_TARGET_MB = 250
# The operator's reads, judged at 10,000,000 runs on PostgreSQL: p50 at 1 client.
OPERATOR_P50_TARGETS_MS = {ERRORS: 20.0, VERSIONS: 10.0}
OPERATOR_TARGET_RUNS = 10_000_000


def _verdict(ok: bool) -> str:
    return "met" if ok else "missed"


def headlines(result: dict[str, Any]) -> list[str]:
    """The targets, each read off the table and marked met or missed."""
    rows = result["rows"]
    out = []
    top = max((r["connections"] for r in rows), default=1)
    if result.get("runs") != 1_000_000 or result.get("smoke"):
        out.append(
            f"(the targets are for 1,000,000 runs on a quiet machine; this run had "
            f"{result.get('runs', 0):,})"
        )

    def find(dialect: str, endpoint: str, conns: int) -> dict[str, Any] | None:
        return next(
            (
                r
                for r in rows
                if r["dialect"] == dialect
                and r["endpoint"] == endpoint
                and r["connections"] == conns
            ),
            None,
        )

    ceiling = find("—", CONSTANT_BYTES, top)
    for ds in result["datasets"]:
        d = ds["dialect"]
        factor = SQLITE_CPU_FACTOR if d == "sqlite" else 1.0
        cpu = {c["endpoint"]: c for c in ds.get("cpu", [])}
        for name, target in CPU_TARGETS_MS.items():
            c = cpu.get(name)
            if c is None:
                continue
            limit = target * factor
            out.append(
                f"{d}: CPU per request, {name}: {c['cpu_ms_mean']:.3f} ms "
                f"(target ≤ {limit:.2f} ms): {_verdict(c['cpu_ms_mean'] <= limit)}"
            )
        if cpu:
            counts = ", ".join(f"{name} {c['statements_per_request']:g}" for name, c in cpu.items())
            out.append(f"{d}: statements per request: {counts}")
        filt = find(d, FILTERED, top)
        if filt and filt.get("bare_requests_per_second"):
            share = filt["requests_per_second"] / filt["bare_requests_per_second"]
            p50 = filt["p50_ms"] / filt["bare_p50_ms"] if filt["bare_p50_ms"] else 0.0
            p99 = filt["p99_ms"] / filt["bare_p99_ms"] if filt["bare_p99_ms"] else 0.0
            out.append(
                f"{d}: filtered page with exact total at {top} clients: "
                f"{filt['requests_per_second']:,.0f} req/s, {100 * share:.0f}% of the bare app's "
                f"{filt['bare_requests_per_second']:,.0f} (target ≥ {100 * OF_BARE_TARGET:.0f}%): "
                f"{_verdict(share >= OF_BARE_TARGET)}; p50 {filt['p50_ms']:.2f} ms = {p50:.2f}x "
                f"bare, p99 {filt['p99_ms']:.2f} ms = {p99:.2f}x bare (target ≤ "
                f"{LATENCY_OVER_BARE_TARGET}x): "
                f"{_verdict(0 < max(p50, p99) <= LATENCY_OVER_BARE_TARGET)}"
            )
        elif filt:
            out.append(
                f"{d}: filtered page with exact total p50 {filt['p50_ms']:.2f} ms, "
                f"p99 {filt['p99_ms']:.2f} ms at {top} clients (no bare app on {d})"
            )
        fresh = find(d, SUMMARY_FRESH, 1)
        if fresh:
            out.append(
                f"{d}: stats/summary?days=30 fresh p50 {fresh['p50_ms']:.2f} ms at 1 client "
                f"(target ≤ {SUMMARY_FRESH_P50_TARGET_MS:g} ms): "
                f"{_verdict(fresh['p50_ms'] <= SUMMARY_FRESH_P50_TARGET_MS)}"
            )
        for name, target, label in (
            (SUMMARY_304, POLL_304_OF_CEILING_TARGET, "304 polling"),
            (SUMMARY_POLLED, POLLED_OF_CEILING_TARGET, "summary polled without If-None-Match"),
        ):
            row = find(d, name, top)
            if row and ceiling:
                share = row["requests_per_second"] / ceiling["requests_per_second"]
                out.append(
                    f"{d}: {label} at {top} clients: {100 * share:.0f}% of constant-JSON req/s "
                    f"(target ≥ {100 * target:.0f}%): {_verdict(share >= target)}"
                )
            elif not row:
                out.append(f"{d}: {label}: not measured")
        for name, target in OPERATOR_P50_TARGETS_MS.items():
            row = find(d, name, 1)
            if row is None:
                continue
            judged = result.get("runs", 0) >= OPERATOR_TARGET_RUNS and not result.get("smoke")
            verdict = _verdict(row["p50_ms"] <= target) if judged else "judged at 10M runs"
            out.append(
                f"{d}: {name} p50 {row['p50_ms']:.2f} ms at 1 client, CPU "
                f"{row.get('cpu_ms') or 0:.2f} ms/req (target at {OPERATOR_TARGET_RUNS:,} runs "
                f"≤ {target:g} ms): {verdict}"
            )
        page1 = find(d, PAGE1, 1)
        deep = next(
            (
                r
                for r in rows
                if r["dialect"] == d
                and r["endpoint"].startswith("GET /runs?limit=20 cursor")
                and r["connections"] == 1
            ),
            None,
        )
        if page1 and deep:
            out.append(
                f"{d}: cursor page at depth {ds['depth']:,} / page 1 p50: "
                f"{deep['p50_ms'] / page1['p50_ms']:.2f}x"
            )
        for r in rows:
            if r["dialect"] == d and r["endpoint"].startswith(BATCH_PREFIX):
                target = BATCH_TARGETS.get(r["connections"])
                verdict = (
                    f" (target ≥ {target:,}): {_verdict(r['runs_per_second'] >= target)}"
                    if target
                    else ""
                )
                clients = "client" if r["connections"] == 1 else "clients"
                out.append(
                    f"{d}: POST /runs/batch at {r['connections']} {clients}: "
                    f"{r['runs_per_second']:,.0f} runs/s{verdict}"
                )
        mem = ds.get("server_memory_kb", {})
        if mem:
            peak = mem.get("VmHWM", 0) / 1024
            out.append(
                f"{d}: server peak RSS {peak:.0f} MB (target ≤ {PEAK_RSS_TARGET_MB} MB): "
                f"{_verdict(peak <= PEAK_RSS_TARGET_MB)}"
            )
    return out


def write_results(result: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    md = out_dir / f"{stamp}.md"
    js = out_dir / f"{stamp}.json"
    md.write_text(render_markdown(result), encoding="utf-8")
    js.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return md, js
