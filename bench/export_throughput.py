"""Export throughput: rows per second and server memory while streaming `GET /runs/export`.

Loads N generated layer runs (the same generator, bulk loader and PostgreSQL
settings as `bench.run`), starts `runwatch serve` as a subprocess, and streams the whole
table through `GET /runs/export` in each format, then the failed runs only.
For each it prints rows/s, MB/s, and the server's resident memory before the
export and at its peak (`VmHWM` is reset before each export through
`/proc/PID/clear_refs`, so each peak is that export's own).

    python -m bench.export_throughput                          # 200,000 runs, both databases
    python -m bench.export_throughput --runs 1000000 --dialect postgresql
    python -m bench.export_throughput --postgres-url postgresql+asyncpg://…/db  # reused if loaded

Run it from the repository root. Rows are counted by the client as lines
received, so a number is only printed for a complete export.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from tests.support.postgres import TemporaryPostgres

from bench import datagen, load
from bench.run import POSTGRES_OPTIONS, serve_runwatch
from runwatch.migrate import upgrade


def log(message: str) -> None:
    print(f"[export] {message}", file=sys.stderr, flush=True)


def _reset_peak(server: load.ServerProcess) -> None:
    if server.proc is None:
        return
    # Where this is not allowed, the peak is the process's peak so far.
    with contextlib.suppress(OSError):
        Path(f"/proc/{server.proc.pid}/clear_refs").write_text("5")


def measure(server: load.ServerProcess, query: str, expected_rows: int | None) -> dict[str, Any]:
    """Stream one export to the end; rows/s, bytes/s and the server's memory."""
    _reset_peak(server)
    before = server.memory_kb()
    rows = 0
    size = 0
    started = time.perf_counter()
    with (
        httpx.Client(base_url=server.base_url, timeout=120.0) as client,
        client.stream("GET", f"/runs/export?{query}") as response,
    ):
        response.raise_for_status()
        for chunk in response.iter_bytes(1 << 20):
            rows += chunk.count(b"\n")
            size += len(chunk)
    seconds = time.perf_counter() - started
    after = server.memory_kb()
    if "format=csv" in query:
        rows -= 1  # the header line
    if expected_rows is not None and rows != expected_rows:
        raise AssertionError(f"{query}: exported {rows} rows, expected {expected_rows}")
    return {
        "query": query,
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_second": round(rows / seconds) if seconds else 0,
        "mb_per_second": round(size / seconds / 1e6, 1) if seconds else 0,
        "rss_before_mb": round(before.get("VmRSS", 0) / 1024, 1),
        "rss_peak_mb": round(after.get("VmHWM", 0) / 1024, 1),
        "rss_growth_mb": round((after.get("VmHWM", 0) - before.get("VmRSS", 0)) / 1024, 1),
    }


async def _count_runs(url: str) -> int:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text("SELECT count(*) FROM layer_runs"))).scalar_one())
    finally:
        await engine.dispose()


def run_one(dialect: str, url: str, args: argparse.Namespace, workdir: Path) -> list[dict]:
    asyncio.run(upgrade(url))
    runs = asyncio.run(_count_runs(url))
    if runs:
        # A database loaded before (`--postgres-url`): measured as it is, to rerun quickly.
        log(f"{dialect}: {runs:,} runs already there; not loading")
    else:
        log(f"{dialect}: loading {args.runs:,} runs")
        if dialect == "postgresql":
            dsn = url.replace("postgresql+asyncpg://", "postgresql://")
            report = asyncio.run(
                datagen.load_postgres(dsn, args.runs, seed=args.seed, heap_order=args.heap_order)
            )
        else:
            report = datagen.load_sqlite(url.split("///", 1)[1], args.runs, seed=args.seed)
        log(f"{dialect}: loaded {report.rows:,} runs in {report.seconds:.1f} s")
        runs = report.rows
    server = serve_runwatch(url, workdir, "warning")
    results = []
    try:
        # Warm-up: a small export, so that connections and caches are not measured cold.
        measure(server, "format=ndjson&until=2000-01-02T00:00:00Z", 0)
        for query in ("format=ndjson", "format=csv", "format=ndjson&status=failed"):
            expected = runs if "status" not in query else None
            result = {"dialect": dialect, **measure(server, query, expected)}
            log(
                f"{dialect} {query}: {result['rows']:,} rows in {result['seconds']} s = "
                f"{result['rows_per_second']:,} rows/s, {result['mb_per_second']} MB/s; "
                f"RSS {result['rss_before_mb']} MB -> peak {result['rss_peak_mb']} MB"
            )
            results.append(result)
    finally:
        server.stop()
    return results


def table(results: list[dict]) -> str:
    lines = [
        "| database | export | rows | rows/s | MB/s | server RSS before → peak (MB) |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['dialect']} | `{r['query']}` | {r['rows']:,} | {r['rows_per_second']:,} | "
            f"{r['mb_per_second']} | {r['rss_before_mb']} → {r['rss_peak_mb']} "
            f"(+{r['rss_growth_mb']}) |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--heap-order",
        choices=("started", "generated"),
        default="started",
        help="PostgreSQL: store the runs in the order they started (as recorded live) or "
        "in the order generated (scattered: every read by time touches a page per row)",
    )
    parser.add_argument("--dialect", choices=("postgresql", "sqlite", "both"), default="both")
    parser.add_argument(
        "--postgres-url",
        help="a migratable database (default: private); one that holds runs is used as it is",
    )
    args = parser.parse_args(argv)
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="runwatch-export-") as tmp:
        workdir = Path(tmp)
        if args.dialect in ("postgresql", "both"):
            if args.postgres_url:
                results += run_one("postgresql", args.postgres_url, args, workdir)
            else:
                # Tuned as bench.run tunes its cluster for this machine, not as a test cluster.
                with TemporaryPostgres(durable=True, options=POSTGRES_OPTIONS) as pg:
                    results += run_one("postgresql", pg.url, args, workdir)
        if args.dialect in ("sqlite", "both"):
            url = f"sqlite+aiosqlite:///{workdir / 'export.db'}"
            results += run_one("sqlite", url, args, workdir)
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
