"""One command to benchmark runwatch: load N runs, serve them, drive load, compare, report.

    .venv/bin/python -m bench.run                 # 1M runs, PostgreSQL and SQLite
    .venv/bin/python -m bench.run --smoke         # 10k runs, ~1 s per measurement
    .venv/bin/python -m bench.run --dialect postgresql --runs 10000000

See bench/README.md for what is measured and how.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
from ulid import ULID

from bench import cpu, datagen, dbref, load, report
from bench.report import (
    CONSTANT_BYTES,
    CONSTANT_DICT,
    DETAIL,
    ERRORS,
    FILTERED,
    PAGE1,
    SUMMARY_304,
    SUMMARY_FRESH,
    SUMMARY_POLLED,
    VERSIONS,
)
from runwatch.app import create_app
from runwatch.config import Settings
from runwatch.demo import generate_layer_runs
from runwatch.kinds import LAYER_RUNS
from runwatch.migrate import upgrade
from runwatch.queries.pagination import encode_cursor
from runwatch.queries.runs import sort_spec

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

# For a 24 GiB, 2-core machine shared with the API server: a quarter of memory as
# shared buffers, the OS cache for the rest; cheap random reads (SSD).
POSTGRES_OPTIONS = {
    "shared_buffers": "4GB",
    "effective_cache_size": "16GB",
    "work_mem": "32MB",
    "maintenance_work_mem": "1GB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
    "random_page_cost": "1.1",
    "effective_io_concurrency": "200",
    "max_parallel_workers_per_gather": "2",
    "max_connections": "200",
}
SMOKE_POSTGRES_OPTIONS = {"shared_buffers": "256MB", "work_mem": "16MB"}

SUMMARY_PATH = "/runs/stats/summary?days=30"


BATCH_ID_PREFIX = "bench-"  # the ids of the runs the batch measurements record


def log(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


@dataclass
class Endpoint:
    name: str
    paths: list[str]
    headers: dict[str, str] = field(default_factory=dict)
    db: dbref.ReplayResult | None = None
    poll: bool = False  # send back each answer's ETag (wrk only)
    bare: bool = False  # also served by the bare app (PostgreSQL)
    fresh: bool = True  # in-process measurements never let a cache answer
    captures: list[dbref.Capture] = field(default_factory=list)


@dataclass
class Dataset:
    dialect: str
    url: str  # SQLAlchemy URL the server uses
    rows: int = 0
    loaded: int = 0
    load: datagen.LoadReport | None = None
    sqlite_path: str | None = None
    dsn: str | None = None  # plain asyncpg DSN
    extras: dict[str, Any] = field(default_factory=dict)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=None, help="layer runs to load (default 1,000,000)")
    p.add_argument("--dialect", choices=("postgresql", "sqlite", "both"), default=None)
    p.add_argument("--duration", default=None, help="per endpoint and concurrency (e.g. 10s)")
    p.add_argument("--connections", default="1,16", help="comma-separated concurrencies")
    p.add_argument("--postgres-url", help="use this (empty or already loaded) database")
    p.add_argument("--sqlite-path", help="use this SQLite file (created, or reused if loaded)")
    p.add_argument(
        "--keep-postgres",
        action="store_true",
        help="leave the private cluster running with its data, to rerun with --postgres-url",
    )
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--heap-order",
        choices=("started", "generated"),
        default="started",
        help="PostgreSQL: store the runs in the order they started (as recorded live) or "
        "in the order generated (scattered: every read by time touches a page per row)",
    )
    p.add_argument("--days", type=float, default=365.0, help="span of generated start times")
    p.add_argument("--depth", type=int, default=100_000, help="row depth of the deep page")
    p.add_argument("--batch-size", type=int, default=1000, help="runs per POST /runs/batch")
    p.add_argument("--driver", choices=("auto", "wrk", "httpx"), default="auto")
    p.add_argument("--workers", type=int, default=None, help="generator processes")
    p.add_argument("--server-log-level", default="warning")
    p.add_argument(
        "--cpu-calls",
        type=int,
        default=None,
        help="in-process calls per endpoint for the CPU column (default 300, smoke 40)",
    )
    p.add_argument("--out-dir", type=Path, default=REPO / "bench" / "results")
    p.add_argument(
        "--smoke", action="store_true", help="10k runs, 1 s per measurement, both dialects"
    )
    args = p.parse_args(argv)
    if args.smoke:
        args.runs = args.runs or 10_000
        args.dialect = args.dialect or "both"
        args.duration = args.duration or "1s"
    args.runs = args.runs if args.runs is not None else 1_000_000
    args.dialect = args.dialect or "both"
    args.duration_s = _seconds(args.duration or "10s")
    args.connection_levels = [int(c) for c in args.connections.split(",") if c.strip()]
    args.ref_seconds = 0.3 if args.smoke else 3.0
    args.cpu_calls = args.cpu_calls or (40 if args.smoke else 300)
    args.cpu_warmup = 10 if args.smoke else 30
    return args


def _seconds(text: str) -> int:
    text = text.strip().lower()
    factor = 60 if text.endswith("m") else 1
    value = float(text.rstrip("sm"))
    return max(1, round(value * factor))


def choose_driver(requested: str) -> str:
    if requested == "httpx":
        return "httpx"
    if load.wrk_path():
        return "wrk"
    if requested == "wrk":
        raise SystemExit(load.WRK_INSTALL_HINT)
    log(load.WRK_INSTALL_HINT + "; falling back to the in-process httpx driver (slower)")
    return "httpx"


def drive(
    driver: str,
    base_url: str,
    endpoint: Endpoint,
    connections: int,
    seconds: int,
) -> load.LoadResult:
    load.warm_up(base_url, endpoint.paths, endpoint.headers)
    if driver == "wrk":
        return load.run_wrk(
            base_url,
            endpoint.paths,
            connections=connections,
            seconds=seconds,
            headers=endpoint.headers,
            poll=endpoint.poll,
        )
    return load.run_httpx(
        base_url, endpoint.paths, connections=connections, seconds=seconds, headers=endpoint.headers
    )


# -- the data -----------------------------------------------------------------------------


async def vacuum(dsn: str, table: str) -> None:
    """`VACUUM (ANALYZE)` one PostgreSQL table."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"VACUUM (ANALYZE) {table}")
    finally:
        await conn.close()


async def ensure_rollups(ds: Dataset, *, force: bool) -> None:
    """Rebuild the rollups after a bulk load, which bypasses the service that keeps them.

    On a reused database they are rebuilt only if they do not account for every run.
    """
    from sqlalchemy import func, select
    from sqlalchemy.ext.asyncio import create_async_engine

    from runwatch.db.tables import layer_run_rollups, layer_runs
    from runwatch.queries.operator_rollups import rebuild_operator_rollups
    from runwatch.queries.rollup_upkeep import rebuild_layer_run_rollups

    engine = create_async_engine(ds.url)
    try:
        async with engine.begin() as conn:
            if not force:
                counted = (
                    await conn.execute(select(func.count()).select_from(layer_runs))
                ).scalar_one()
                rolled = (
                    await conn.execute(
                        select(func.coalesce(func.sum(layer_run_rollups.c.runs), 0)).where(
                            layer_run_rollups.c.grain == "day"
                        )
                    )
                ).scalar_one()
                if int(rolled) == int(counted):
                    return
            started = time.perf_counter()
            await rebuild_layer_run_rollups(conn)
            await rebuild_operator_rollups(conn)
            ds.extras["rollup_seconds"] = round(time.perf_counter() - started, 2)
    finally:
        await engine.dispose()
    if ds.dialect == "postgresql" and ds.dsn:
        await vacuum(ds.dsn, "layer_run_rollups")
    else:
        db = sqlite3.connect(ds.sqlite_path or "")
        db.execute("ANALYZE")
        db.close()
    log(f"{ds.dialect}: rollups rebuilt in {ds.extras['rollup_seconds']} s")


async def prepare_postgres(ds: Dataset, args: argparse.Namespace) -> None:
    import asyncpg

    await upgrade(ds.url)
    ds.dsn = ds.url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(ds.dsn)
    try:
        existing = await conn.fetchval("SELECT count(*) FROM layer_runs")
    finally:
        await conn.close()
    if existing == 0:
        log(f"postgresql: generating and copying {args.runs:,} runs")
        ds.load = await datagen.load_postgres(
            ds.dsn,
            args.runs,
            seed=args.seed,
            days=args.days,
            workers=args.workers,
            progress=lambda m: log(f"postgresql: {m}"),
            heap_order=args.heap_order,
        )
        ds.loaded = ds.load.rows
    await ensure_rollups(ds, force=existing == 0)
    conn = await asyncpg.connect(ds.dsn)
    try:
        ds.rows = await conn.fetchval("SELECT count(*) FROM layer_runs")
        ds.extras["popular_layer"] = await conn.fetchval(
            "SELECT layer_name FROM layer_runs GROUP BY layer_name ORDER BY count(*) DESC LIMIT 1"
        )
        depth = min(args.depth, max(1, ds.rows // 2))
        row = await conn.fetchrow(
            "SELECT started_at, id FROM layer_runs ORDER BY started_at DESC, id DESC "
            "LIMIT 1 OFFSET $1",
            depth - 1,
        )
        ds.extras["depth"] = depth
        ds.extras["deep_key"] = (row["started_at"], row["id"])
        sample = await conn.fetch(
            "SELECT id FROM layer_runs TABLESAMPLE SYSTEM (1) LIMIT 1000"
        ) or await conn.fetch("SELECT id FROM layer_runs LIMIT 1000")
        ds.extras["ids"] = [r["id"] for r in sample]
        ds.extras["postgres_version"] = await conn.fetchval("SHOW server_version")
        ds.extras["layers"] = [
            r[0] for r in await conn.fetch("SELECT DISTINCT layer_name FROM layer_runs ORDER BY 1")
        ]
        ds.extras["statuses"] = [
            r[0] for r in await conn.fetch("SELECT DISTINCT status FROM layer_runs ORDER BY 1")
        ]
    finally:
        await conn.close()


async def prepare_sqlite(ds: Dataset, args: argparse.Namespace) -> None:
    await upgrade(ds.url)
    assert ds.sqlite_path is not None
    db = sqlite3.connect(ds.sqlite_path)
    existing = db.execute("SELECT count(*) FROM layer_runs").fetchone()[0]
    db.close()
    if existing == 0:
        log(f"sqlite: generating and inserting {args.runs:,} runs")
        ds.load = datagen.load_sqlite(
            ds.sqlite_path,
            args.runs,
            seed=args.seed,
            days=args.days,
            workers=args.workers,
            progress=lambda m: log(f"sqlite: {m}"),
        )
        ds.loaded = ds.load.rows
    await ensure_rollups(ds, force=existing == 0)
    db = sqlite3.connect(ds.sqlite_path)
    try:
        ds.rows = db.execute("SELECT count(*) FROM layer_runs").fetchone()[0]
        ds.extras["popular_layer"] = db.execute(
            "SELECT layer_name FROM layer_runs GROUP BY layer_name ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()[0]
        depth = min(args.depth, max(1, ds.rows // 2))
        started_at, run_id = db.execute(
            "SELECT started_at, id FROM layer_runs ORDER BY started_at DESC, id DESC "
            "LIMIT 1 OFFSET ?",
            (depth - 1,),
        ).fetchone()
        ds.extras["depth"] = depth
        ds.extras["deep_key"] = (
            datetime.fromisoformat(started_at).replace(tzinfo=UTC),
            run_id,
        )
        top = db.execute("SELECT max(rowid) FROM layer_runs").fetchone()[0]
        rng = random.Random(args.seed)
        rowids = [rng.randint(1, top) for _ in range(1000)]
        marks = ",".join("?" for _ in rowids)
        ds.extras["ids"] = [
            r[0] for r in db.execute(f"SELECT id FROM layer_runs WHERE rowid IN ({marks})", rowids)
        ]
        ds.extras["sqlite_version"] = sqlite3.sqlite_version
        ds.extras["layers"] = [
            r[0] for r in db.execute("SELECT DISTINCT layer_name FROM layer_runs ORDER BY 1")
        ]
        ds.extras["statuses"] = [
            r[0] for r in db.execute("SELECT DISTINCT status FROM layer_runs ORDER BY 1")
        ]
    finally:
        db.close()


def endpoints_for(ds: Dataset) -> list[Endpoint]:
    layer = ds.extras["popular_layer"]
    started_at, run_id = ds.extras["deep_key"]
    depth = ds.extras["depth"]
    cursor = encode_cursor(sort_spec(LAYER_RUNS, "-started_at"), started_at, run_id)
    q = httpx.QueryParams
    # Every layer with every status once, in an order that changes both at each step.
    layers, statuses = ds.extras["layers"], ds.extras["statuses"]
    combos = [
        (layers[i % len(layers)], statuses[(i % len(layers) + i // len(layers)) % len(statuses)])
        for i in range(len(layers) * len(statuses))
    ]
    return [
        Endpoint(PAGE1, ["/runs?limit=20"], bare=True),
        Endpoint(
            FILTERED,
            [f"/runs?{q(layer_name=name, status=status, limit=20)}" for name, status in combos],
            bare=True,
        ),
        Endpoint(DETAIL, [f"/runs/{i}" for i in ds.extras["ids"]] or ["/runs/x"], bare=True),
        Endpoint(SUMMARY_POLLED, [SUMMARY_PATH], bare=True),
        Endpoint(
            "GET /runs/stats/summary?days=7&layer_name",
            [f"/runs/stats/summary?{q(days=7, layer_name=layer)}"],
        ),
        Endpoint(
            f"GET /runs?limit=20 cursor at row {depth:,}", [f"/runs?{q(limit=20, cursor=cursor)}"]
        ),
        Endpoint(f"GET /runs?limit=20&offset={depth}", [f"/runs?limit=20&offset={depth}"]),
        Endpoint(ERRORS, ["/runs/errors?days=30"]),
        Endpoint(VERSIONS, [f"/runs/stats/versions?{q(layer_name=layer)}"]),
    ]


async def summary_percentiles(url: str) -> list[float | None]:
    """The summary's duration p50/p95/p99, to show in the report that it answers them."""
    app = create_app(Settings(database_url=url, auto_migrate=False))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as client,
    ):
        body = (await client.get(SUMMARY_PATH)).json()
    found = [body.get(f"duration_p{p}_seconds") for p in (50, 95, 99)]
    if body.get("total_runs") and any(v is None for v in found):
        raise RuntimeError(f"{SUMMARY_PATH} answered no duration percentiles: {found}")
    return found


async def conditional_endpoint(url: str) -> Endpoint | None:
    """`stats/summary` polled with `If-None-Match`, if the service sends an ETag."""
    app = create_app(Settings(database_url=url, auto_migrate=False))
    path = SUMMARY_PATH
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as client,
    ):
        etag = (await client.get(path)).headers.get("etag")
        if not etag:
            return None
        again = await client.get(path, headers={"If-None-Match": etag})
        if again.status_code != 304:
            return None
    return Endpoint(SUMMARY_304, [path], headers={"If-None-Match": etag}, poll=True, fresh=False)


def batch_bodies(count: int, size: int, seed: int) -> list[bytes]:
    """Request bodies of `size` new runs each, started in the last day, with fresh ids."""
    bodies = []
    rng_seed = seed * 7 + 1
    dropped = {"duration_seconds", "created_at", "updated_at"}
    for b in range(count):
        runs = []
        for row in generate_layer_runs(size, seed=rng_seed + b, days=1.0):
            run = {k: v for k, v in row.items() if k not in dropped}
            run["id"] = f"{BATCH_ID_PREFIX}{ULID()}"
            for key in ("started_at", "completed_at"):
                if run[key] is not None:
                    run[key] = run[key].isoformat()
            runs.append(run)
        bodies.append(load.json_body({"runs": runs}))
    return bodies


# -- measuring ----------------------------------------------------------------------------


def _spread(items: list[Any], count: int) -> list[Any]:
    """At most `count` items, evenly spaced through the list."""
    step = max(1, len(items) // count)
    return items[::step][:count]


def capture(ds: Dataset, endpoints: list[Endpoint]) -> None:
    """The statements of each endpoint's requests, recorded in-process (see dbref).

    Endpoints the bare app serves get every path recorded on PostgreSQL; the
    others (and all on SQLite) 20 paths spread through their list.
    """
    groups = []
    for ep in endpoints:
        every = ep.bare and ds.dialect == "postgresql"
        paths = ep.paths if every else _spread(ep.paths, 20)
        groups.append(dbref.CaptureGroup([(p, ep.headers) for p in paths], fresh=ep.fresh))
    recorded = dbref.capture_sync(ds.url, groups, marker_layer=ds.extras["popular_layer"])
    for ep, captures in zip(endpoints, recorded, strict=True):
        ep.captures = captures
        bad = [c for c in captures if c.status >= 400]
        if bad:
            log(f"{ds.dialect}: {ep.name} answered {bad[0].status} in-process")


def measure_db(ds: Dataset, endpoints: list[Endpoint], seconds: float) -> None:
    for ep in endpoints:
        captures = _spread(ep.captures, 20)
        if ds.dialect == "postgresql":
            assert ds.dsn is not None
            ep.db = asyncio.run(dbref.replay_postgres(ds.dsn, captures, seconds=seconds))
        else:
            assert ds.sqlite_path is not None
            ep.db = dbref.replay_sqlite(ds.sqlite_path, captures, seconds=seconds)
        log(
            f"{ds.dialect}: DB {ep.name}: p50 {ep.db.p50_ms:.3f} ms, p99 {ep.db.p99_ms:.3f} ms "
            f"({ep.db.statements} statements, {ep.db.iterations} iterations)"
        )


def _route_key(path: str) -> str:
    """A path as the bare app sees it in its ASGI scope: the path decoded, the query raw."""
    raw, _, query = path.partition("?")
    return unquote(raw) + ("?" + query if query else "")


def serve_bare(ds: Dataset, endpoints: list[Endpoint], workdir: Path, log_level: str) -> Any:
    """The bare app (PostgreSQL) with the statements captured for each bare endpoint."""
    settings = Settings(database_url=ds.url, auto_migrate=False)
    routes = {}
    for ep in endpoints:
        if ep.bare:
            for c in ep.captures:
                routes[_route_key(c.path)] = [
                    (sql, params) for sql, params in c.statements if dbref.is_read(sql)
                ]
    plan = workdir / f"bare-{ds.dialect}.plan"
    pool_size = settings.db_pool_size + settings.db_max_overflow
    plan.write_bytes(pickle.dumps({"dsn": ds.dsn, "pool_size": pool_size, "routes": routes}))
    port = load.free_port()
    cmd = [str(VENV_BIN / "uvicorn"), "bench.bare_app:app", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--workers", "1", "--log-level", log_level]
    env = {**os.environ, "PYTHONPATH": str(REPO), "BENCH_BARE_PLAN": str(plan)}
    server = load.ServerProcess(cmd, env, workdir / f"bare-{port}.log", port)
    server.start("/readyz")
    return server


class HttpFreshener:
    """Over HTTP, what `bench.cpu.Freshener` does in-process: a marker run recorded, then
    deleted, alternately, so that each read after it sees a new data version."""

    def __init__(self, base_url: str, layer: str) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=30.0)
        self.layer = layer
        self.pending: str | None = None

    def __call__(self) -> None:
        if self.pending is None:
            run_id, body = cpu.marker_run(self.layer)
            r = self.client.post(
                "/runs", content=body, headers={"content-type": "application/json"}
            )
            r.raise_for_status()
            self.pending = run_id
        else:
            self.client.delete(f"/runs/{self.pending}").raise_for_status()
            self.pending = None
        time.sleep(0.002)  # the version notification

    def close(self) -> None:
        if self.pending is not None:
            self()
        self.client.close()


def serve_runwatch(
    url: str, workdir: Path, log_level: str, env_extra: dict[str, str] | None = None
) -> load.ServerProcess:
    port = load.free_port()
    exe = VENV_BIN / "runwatch"
    args = [str(exe)] if exe.exists() else [sys.executable, "-m", "runwatch"]
    args += ["--database-url", url, "serve", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--log-level", log_level]
    env = {**os.environ, "RUNWATCH_AUTO_MIGRATE": "false", **(env_extra or {})}
    server = load.ServerProcess(args, env, workdir / f"server-{port}.log", port)
    server.start("/readyz")
    return server


def _row(ds: Dataset, ep: Endpoint, conns: int, result: load.LoadResult) -> dict[str, Any]:
    return {
        "dialect": ds.dialect,
        "endpoint": ep.name,
        "connections": conns,
        "requests_per_second": round(result.requests_per_second, 1),
        "p50_ms": round(result.p50_ms, 3),
        "p99_ms": round(result.p99_ms, 3),
        "db_p50_ms": round(ep.db.p50_ms, 3) if ep.db else None,
        "db_p99_ms": round(ep.db.p99_ms, 3) if ep.db else None,
        "errors": result.errors,
        "requests": result.requests,
        "driver": result.driver,
    }


def _log_result(ds: Dataset, name: str, conns: int, result: load.LoadResult) -> None:
    log(
        f"{ds.dialect}: {name} c={conns}: {result.requests_per_second:,.0f} req/s, "
        f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, errors {result.errors}"
    )


def measure_cpu(ds: Dataset, endpoints: list[Endpoint], args: argparse.Namespace) -> None:
    """The in-process CPU and statements per request of every GET endpoint (bench.cpu)."""
    cases = [
        cpu.CpuCase(
            ep.name,
            [(p, ep.headers) for p in ep.paths],
            fresh=ep.fresh,
            expect=304 if ep.poll else 200,
            follow_etag=ep.poll,
        )
        for ep in endpoints
    ]
    summary = next(ep for ep in endpoints if ep.name == SUMMARY_POLLED)
    cases.append(cpu.CpuCase(SUMMARY_FRESH, [(p, {}) for p in summary.paths], fresh=True))
    summary_case = next(c for c in cases if c.name == SUMMARY_POLLED)
    summary_case.fresh = False  # polled: the same request again, on unchanged data
    results = cpu.measure_sync(
        ds.url,
        cases,
        marker_layer=ds.extras["popular_layer"],
        calls=args.cpu_calls,
        warmup=args.cpu_warmup,
    )
    ds.extras["cpu"] = []
    for r in results:
        ds.extras["cpu"].append(
            {
                "endpoint": r.name,
                "calls": r.calls,
                "cpu_ms_mean": round(r.cpu_ms_mean, 4),
                "cpu_ms_p50": round(r.cpu_ms_p50, 4),
                "statements_per_request": round(r.statements_per_request, 2),
                "writes_between": r.writes_between,
                "unexpected_statuses": r.unexpected,
            }
        )
        log(
            f"{ds.dialect}: CPU {r.name}: {r.cpu_ms_mean:.3f} ms/call (p50 {r.cpu_ms_p50:.3f}), "
            f"{r.statements_per_request:.2f} statements/call over {r.calls} calls, "
            f"{r.writes_between} writes between"
        )


def run_dataset(
    ds: Dataset, args: argparse.Namespace, driver: str, workdir: Path
) -> list[dict[str, Any]]:
    endpoints = endpoints_for(ds)
    ds.extras["summary_percentiles"] = asyncio.run(summary_percentiles(ds.url))
    conditional = asyncio.run(conditional_endpoint(ds.url))
    if conditional is not None:
        endpoints.insert(4, conditional)
    else:
        log(f"{ds.dialect}: no ETag on stats/summary; the If-None-Match row is left out")
    log(f"{ds.dialect}: recording the statements of each endpoint in-process")
    capture(ds, endpoints)
    if conditional is not None:
        # The writes that kept the recording fresh moved the data version on.
        current = asyncio.run(conditional_endpoint(ds.url))
        if current is not None:
            conditional.headers = current.headers
    log(f"{ds.dialect}: measuring the database's own cost per endpoint")
    measure_db(ds, endpoints, args.ref_seconds)

    rows: list[dict[str, Any]] = []
    server = serve_runwatch(ds.url, workdir, args.server_log_level)
    log(f"{ds.dialect}: runwatch serve pid {server.proc.pid if server.proc else '?'}")
    # The read measurements repeat their paths on unchanged data, which the
    # encoded-answer cache would answer: every endpoint but the polled ones
    # is measured on a second server with that cache off.
    uncached = serve_runwatch(
        ds.url, workdir, args.server_log_level, {"RUNWATCH_RESPONSE_CACHE_BYTES": "0"}
    )
    bare = None
    try:
        if ds.dialect == "postgresql":
            bare = serve_bare(ds, endpoints, workdir, args.server_log_level)
            log(f"{ds.dialect}: bare app pid {bare.proc.pid if bare.proc else '?'}")
        for ep in endpoints:
            # The polled rows ask again for unchanged data: what the cache is for.
            polled = not ep.fresh or ep.name == SUMMARY_POLLED
            target = server if polled else uncached
            for conns in args.connection_levels:
                result = drive(driver, target.base_url, ep, conns, args.duration_s)
                target.memory_kb()
                row = _row(ds, ep, conns, result)
                row["response_cache"] = "on" if target is server else "off"
                rows.append(row)
                _log_result(ds, ep.name, conns, result)
                if bare is not None and ep.bare:
                    # Right after runwatch's, so both see the machine in the same state.
                    base = drive(driver, bare.base_url, ep, conns, args.duration_s)
                    row["bare_requests_per_second"] = round(base.requests_per_second, 1)
                    row["bare_p50_ms"] = round(base.p50_ms, 3)
                    row["bare_p99_ms"] = round(base.p99_ms, 3)
                    row["bare_errors"] = base.errors
                    _log_result(ds, f"bare app {ep.name}", conns, base)
        if bare is not None:
            bare.stop()
            bare = None

        summary = next(ep for ep in endpoints if ep.name == SUMMARY_POLLED)
        freshen = HttpFreshener(server.base_url, ds.extras["popular_layer"])
        try:
            fresh = load.run_fresh_sequential(
                server.base_url, SUMMARY_PATH, freshen, seconds=args.duration_s
            )
        finally:
            freshen.close()
        server.memory_kb()
        rows.append(_row(ds, replace(summary, name=SUMMARY_FRESH), 1, fresh))
        _log_result(ds, SUMMARY_FRESH, 1, fresh)

        log(f"{ds.dialect}: measuring CPU per request in-process")
        measure_cpu(ds, endpoints, args)
        by_name = {c["endpoint"]: c for c in ds.extras["cpu"]}
        for row in rows:
            c = by_name.get(row["endpoint"])
            if c is not None:
                row["cpu_ms"] = c["cpu_ms_mean"]
                row["statements"] = c["statements_per_request"]

        per_level = max(3, min(200, args.duration_s * 12))
        for conns in args.connection_levels:
            count = max(per_level, conns * 2)
            bodies = batch_bodies(count, args.batch_size, args.seed + conns)
            batch = load.post_batches(
                server.base_url,
                bodies,
                runs_per_body=args.batch_size,
                connections=conns,
                seconds=args.duration_s,
            )
            server.memory_kb()
            rows.append(
                {
                    "dialect": ds.dialect,
                    "endpoint": f"POST /runs/batch ({args.batch_size:,} runs)",
                    "connections": conns,
                    "requests_per_second": round(batch.requests_per_second, 2),
                    "p50_ms": round(batch.p50_ms, 3),
                    "p99_ms": round(batch.p99_ms, 3),
                    "db_p50_ms": None,
                    "db_p99_ms": None,
                    "errors": batch.errors,
                    "error_statuses": batch.error_statuses,
                    "requests": batch.batches,
                    "runs_per_second": round(batch.runs_per_second, 1),
                    "driver": batch.driver,
                }
            )
            log(
                f"{ds.dialect}: batch c={conns}: {batch.runs_per_second:,.0f} runs/s "
                f"({batch.batches} batches, p50 {batch.p50_ms:.1f} ms, "
                f"errors {batch.error_statuses or 0})"
            )
        memory = server.memory_kb()
        memory["VmRSS_max_sampled"] = max(server.rss_samples_kb, default=0)
        ds.extras["server_memory_kb"] = memory
    finally:
        if bare is not None:
            bare.stop()
        uncached.stop()
        server.stop()
        if _outlives_run(ds, args):
            asyncio.run(remove_batch_runs(ds))
    return rows


def _outlives_run(ds: Dataset, args: argparse.Namespace) -> bool:
    """Whether the database is kept after this run (and so may be measured again)."""
    if ds.dialect == "postgresql":
        return bool(args.postgres_url or args.keep_postgres)
    return bool(args.sqlite_path)


async def remove_batch_runs(ds: Dataset) -> None:
    """Delete the runs the batch measurements recorded, and rebuild the rollups without them.

    They started in the last day: left in a kept database, they would change
    what the next run's summaries and pages measure.
    """
    from sqlalchemy import delete
    from sqlalchemy.ext.asyncio import create_async_engine

    from runwatch.db.tables import layer_runs

    engine = create_async_engine(ds.url)
    try:
        async with engine.begin() as conn:
            gone = await conn.execute(
                delete(layer_runs).where(layer_runs.c.id.startswith(BATCH_ID_PREFIX))
            )
    finally:
        await engine.dispose()
    if gone.rowcount:
        log(f"{ds.dialect}: removed the {gone.rowcount:,} runs the batches recorded")
        loaded = ds.extras.get("rollup_seconds")
        await ensure_rollups(ds, force=True)
        ds.extras["rollup_seconds"] = loaded  # the report keeps the load's rebuild time
        if ds.dialect == "postgresql" and ds.dsn:
            # The deleted rows' index entries would otherwise slow the next run's
            # reads of the last day until autovacuum came round.
            await vacuum(ds.dsn, "layer_runs")


def run_constant(args: argparse.Namespace, driver: str, workdir: Path) -> list[dict[str, Any]]:
    port = load.free_port()
    cmd = [
        str(VENV_BIN / "uvicorn"),
        "bench.constant_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        args.server_log_level,
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    server = load.ServerProcess(cmd, env, workdir / "constant.log", port)
    server.start("/bytes")
    rows = []
    try:
        for name, path in ((CONSTANT_BYTES, "/bytes"), (CONSTANT_DICT, "/dict")):
            for conns in args.connection_levels:
                result = drive(
                    driver, server.base_url, Endpoint(name, [path]), conns, args.duration_s
                )
                rows.append(
                    {
                        "dialect": "—",
                        "endpoint": name,
                        "connections": conns,
                        "requests_per_second": round(result.requests_per_second, 1),
                        "p50_ms": round(result.p50_ms, 3),
                        "p99_ms": round(result.p99_ms, 3),
                        "db_p50_ms": None,
                        "db_p99_ms": None,
                        "errors": result.errors,
                        "requests": result.requests,
                        "driver": result.driver,
                    }
                )
                log(f"constant {path} c={conns}: {result.requests_per_second:,.0f} req/s")
    finally:
        server.stop()
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    driver = choose_driver(args.driver)
    dialects = ["postgresql", "sqlite"] if args.dialect == "both" else [args.dialect]
    started = time.perf_counter()
    loadavg_start = report.load_average()
    workdir = Path(tempfile.mkdtemp(prefix="runwatch-bench-"))
    log(f"runs={args.runs:,} dialects={','.join(dialects)} driver={driver} workdir={workdir}")

    rows: list[dict[str, Any]] = run_constant(args, driver, workdir)
    datasets: list[Dataset] = []
    for dialect in dialects:
        pg = None
        try:
            if dialect == "postgresql":
                if args.postgres_url:
                    url = args.postgres_url
                else:
                    from tests.support.postgres import TemporaryPostgres

                    options = SMOKE_POSTGRES_OPTIONS if args.smoke else POSTGRES_OPTIONS
                    pg = TemporaryPostgres(durable=True, options=options)
                    url = pg.start()
                    log(f"postgresql: started a private cluster on port {pg.port}")
                ds = Dataset("postgresql", url)
                asyncio.run(prepare_postgres(ds, args))
            else:
                path = args.sqlite_path or str(workdir / "bench.db")
                ds = Dataset("sqlite", f"sqlite+aiosqlite:///{path}", sqlite_path=path)
                asyncio.run(prepare_sqlite(ds, args))
            if ds.load:
                log(
                    f"{dialect}: loaded {ds.load.rows:,} rows at "
                    f"{ds.load.rows_per_second:,.0f} rows/s ({ds.load.seconds:.1f} s)"
                )
            datasets.append(ds)
            rows += run_dataset(ds, args, driver, workdir)
        finally:
            if pg is not None and args.keep_postgres:
                log(
                    f"postgresql: kept running at {pg.url} (pid {pg.pid}, data {pg.datadir}); "
                    f"stop it with: kill -INT {pg.pid}"
                )
            elif pg is not None:
                pg.stop()
    # The databases go; the server logs stay, to explain any error in the table.
    for leftover in workdir.glob("bench.db*"):
        leftover.unlink()

    report.add_ratios(rows)
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": report.machine(),
        "commit": report.git_commit(),
        "runs": args.runs,
        "dialects": dialects,
        "duration_s": args.duration_s,
        "driver": "wrk" if driver == "wrk" else "httpx (fallback, in-process Python)",
        "server_log_level": args.server_log_level,
        "smoke": args.smoke,
        "loadavg_start": loadavg_start,
        "loadavg_end": report.load_average(),
        "elapsed_s": round(time.perf_counter() - started, 1),
        "datasets": [
            {
                "dialect": ds.dialect,
                "rows": ds.rows,
                "loaded": ds.loaded,
                "load_rows_per_second": round(ds.load.rows_per_second, 1) if ds.load else 0.0,
                "load_seconds": round(ds.load.seconds, 2) if ds.load else 0.0,
                "index_seconds": round(ds.load.index_seconds, 2) if ds.load else 0.0,
                "rollup_seconds": ds.extras.get("rollup_seconds"),
                "popular_layer": ds.extras["popular_layer"],
                "summary_percentiles": ds.extras.get("summary_percentiles"),
                "depth": ds.extras["depth"],
                "server_memory_kb": ds.extras.get("server_memory_kb", {}),
                "cpu": ds.extras.get("cpu", []),
                "layers": len(ds.extras.get("layers", [])),
                "statuses": len(ds.extras.get("statuses", [])),
                "database_version": ds.extras.get("postgres_version")
                or ds.extras.get("sqlite_version"),
            }
            for ds in datasets
        ],
        "rows": rows,
    }
    result["headlines"] = report.headlines(result)
    md, js = report.write_results(result, args.out_dir)
    print(report.render_markdown(result))
    log(f"wrote {md} and {js} in {result['elapsed_s']} s; server logs in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
