"""Where a read's time goes: each statement it runs, with PostgreSQL's plan and timing.

    .venv/bin/python -m bench.explain --postgres-url postgresql+asyncpg://…
    .venv/bin/python -m bench.explain --postgres-url … --path '/runs/errors?days=30'

On a loaded database (e.g. one kept by `python -m bench.run --keep-postgres`),
each path is called in-process once, fresh (a write first, so no cache
answers), while its statements are recorded (`bench.dbref`); each recorded
read is then run under `EXPLAIN (ANALYZE, BUFFERS)` on a bare asyncpg
connection, and the path's CPU per call is measured in-process (`bench.cpu`).
Prints, per path, its statements with their execution time, rows and plan
root, the database's total, and the process's CPU per call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

from bench import cpu, dbref

DEFAULT_PATHS = (
    "/runs/stats/summary?days=30",
    "/runs/stats/summary?days=7&layer_name={layer}",
    "/runs/errors?days=30",
    "/runs/stats/versions?layer_name={layer}",
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.explain", description=__doc__.split("\n")[0])
    p.add_argument("--postgres-url", required=True, help="postgresql+asyncpg://… (loaded)")
    p.add_argument(
        "--path",
        action="append",
        help="a GET path ({layer} = the most frequent layer); repeatable; default: the "
        "summary, errors and versions reads",
    )
    p.add_argument("--calls", type=int, default=100, help="in-process calls for the CPU column")
    p.add_argument("--plans", action="store_true", help="print every plan in full")
    return p.parse_args(argv)


def _plan_root(plan: dict[str, Any]) -> str:
    node = plan["Plan"]
    return f"{node['Node Type']} rows={node.get('Actual Rows')}"


async def explain(dsn: str, statements: Sequence[dbref.Statement]) -> list[dict[str, Any]]:
    """`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` of each read, run twice (the second kept)."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    out = []
    try:
        for sql, params in statements:
            if not dbref.is_read(sql):
                continue
            query = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql
            await conn.fetchval(query, *params)
            plan = json.loads(await conn.fetchval(query, *params))[0]
            text = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *params)
            out.append(
                {
                    "sql": sql,
                    "planning_ms": plan["Planning Time"],
                    "execution_ms": plan["Execution Time"],
                    "root": _plan_root(plan),
                    "plan": "\n".join(r[0] for r in text),
                }
            )
    finally:
        await conn.close()
    return out


async def popular_layer(dsn: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(
            "SELECT layer_name FROM layer_run_rollups WHERE grain = 'month' "
            "GROUP BY layer_name ORDER BY sum(runs) DESC LIMIT 1"
        )
    finally:
        await conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    url = args.postgres_url
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    layer = asyncio.run(popular_layer(dsn))
    paths = [p.format(layer=layer) for p in (args.path or DEFAULT_PATHS)]
    groups = [dbref.CaptureGroup([(p, {})], fresh=True) for p in paths]
    captured = dbref.capture_sync(url, groups, marker_layer=layer)
    cases = [cpu.CpuCase(p, [(p, {})], fresh=True) for p in paths]
    measured = cpu.measure_sync(url, cases, marker_layer=layer, calls=args.calls, warmup=10)
    for path, (capture,), used in zip(paths, captured, measured, strict=True):
        steps = asyncio.run(explain(dsn, capture.statements))
        total = sum(s["execution_ms"] + s["planning_ms"] for s in steps)
        print(f"\n## {path} (HTTP {capture.status})")
        print(
            f"{len(capture.statements)} statements; database {total:.2f} ms "
            f"(execution + planning); CPU {used.cpu_ms_mean:.2f} ms/call "
            f"(p50 {used.cpu_ms_p50:.2f}) over {used.calls} fresh calls"
        )
        for i, s in enumerate(steps, 1):
            head = " ".join(s["sql"].split())[:110]
            print(
                f"  {i}. {s['execution_ms']:8.2f} ms exec, {s['planning_ms']:6.2f} ms plan, "
                f"{s['root']}: {head}"
            )
            if args.plans:
                print("     " + s["plan"].replace("\n", "\n     "))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
