"""The Core tables: one MetaData with a naming convention, one table per kind of run."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Double,
    Index,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
    text,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.selectable import Alias

from runwatch.db.types import JSONType, UtcDateTime
from runwatch.domain import API_KEY_SCOPES, EXTRACTION_RUN_STATUSES, LAYER_RUN_STATUSES

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


layer_runs = Table(
    "layer_runs",
    metadata,
    Column("id", Text, primary_key=True),
    Column("layer_name", Text, nullable=False),
    Column("layer_hash", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("completed_at", UtcDateTime, nullable=True),
    # Kept by the server from started/completed so that sorting by duration
    # can use an index and aggregates need no dialect-specific date maths.
    Column("duration_seconds", Double, nullable=True),
    Column("targets_matched", Integer, nullable=False, server_default=text("0")),
    Column("targets_processed", Integer, nullable=False, server_default=text("0")),
    Column("targets_skipped", Integer, nullable=False, server_default=text("0")),
    Column("insights_created", Integer, nullable=False, server_default=text("0")),
    Column("model_profile", Text, nullable=True),
    Column("model_provider", Text, nullable=True),
    Column("model_name", Text, nullable=True),
    Column("tokens_input", Integer, nullable=True),
    Column("tokens_output", Integer, nullable=True),
    Column("tokens_total", Integer, nullable=True),
    Column("estimated_cost_usd", Double, nullable=True),
    Column("errors", JSONType, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint(f"status IN ({_quoted(LAYER_RUN_STATUSES)})", name="status"),
    CheckConstraint(
        "targets_matched >= 0 AND targets_processed >= 0 AND targets_skipped >= 0"
        " AND insights_created >= 0",
        name="counts_non_negative",
    ),
    CheckConstraint(
        "(tokens_input IS NULL OR tokens_input >= 0)"
        " AND (tokens_output IS NULL OR tokens_output >= 0)"
        " AND (tokens_total IS NULL OR tokens_total >= 0)",
        name="tokens_non_negative",
    ),
    CheckConstraint(
        "estimated_cost_usd IS NULL OR estimated_cost_usd >= 0", name="cost_non_negative"
    ),
    CheckConstraint(
        "(status = 'running' AND completed_at IS NULL)"
        " OR (status <> 'running' AND completed_at IS NOT NULL AND completed_at >= started_at)",
        name="completion",
    ),
)

# Every list query orders by (sort key, id); each index below ends in the same
# pair so that a filtered, sorted page is an index range scan. See the README
# ("Indexes") for the EXPLAIN output on PostgreSQL that shows each one used.
Index("ix_layer_runs_started_at_id", layer_runs.c.started_at, layer_runs.c.id)
Index(
    "ix_layer_runs_layer_name_started_at_id",
    layer_runs.c.layer_name,
    layer_runs.c.started_at,
    layer_runs.c.id,
)
Index(
    "ix_layer_runs_status_started_at_id",
    layer_runs.c.status,
    layer_runs.c.started_at,
    layer_runs.c.id,
)
Index(
    "ix_layer_runs_layer_name_status_started_at_id",
    layer_runs.c.layer_name,
    layer_runs.c.status,
    layer_runs.c.started_at,
    layer_runs.c.id,
)
# The running runs alone, for counting the stuck ones: an index-only scan whose
# size does not grow with the table.
Index(
    "ix_layer_runs_running_started_at_layer_name",
    layer_runs.c.started_at,
    layer_runs.c.layer_name,
    postgresql_where=text("status = 'running'"),
    sqlite_where=text("status = 'running'"),
)


class _ThroughRunningIndex(Alias):
    """`layer_runs`, read through the running runs' index on SQLite (`INDEXED BY`).

    SQLite's planner prefers `ix_layer_runs_status_started_at_id` for
    `status = 'running'`, which then reads every row's layer from the table;
    PostgreSQL picks the partial index by itself. A statement from this must
    imply the index (`status = 'running'` as a literal), or SQLite rejects it.
    """

    inherit_cache = True


@compiles(_ThroughRunningIndex)
def _plain_table(element: _ThroughRunningIndex, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.element, **kw))


@compiles(_ThroughRunningIndex, "sqlite")
def _indexed_table(element: _ThroughRunningIndex, compiler: Any, **kw: Any) -> str:
    table = compiler.process(element.element, **kw)
    return f"{table} INDEXED BY ix_layer_runs_running_started_at_layer_name"


running_layer_runs = _ThroughRunningIndex._construct(layer_runs, name="layer_runs")
# The other sort keys are read mostly largest first ("most expensive") with
# unknown (null) values last, in both directions. SQLite cannot declare NULLS
# LAST in an index, so these exist on PostgreSQL only; SQLite sorts instead.
for _name in ("estimated_cost_usd", "tokens_total", "duration_seconds"):
    Index(
        f"ix_layer_runs_{_name}_id",
        layer_runs.c[_name].desc().nulls_last(),
        layer_runs.c.id.desc(),
    ).ddl_if(dialect="postgresql")

extraction_runs = Table(
    "extraction_runs",
    metadata,
    Column("id", Text, primary_key=True),
    Column("prompt_id", Text, nullable=False),
    Column("config_id", Text, nullable=False),
    Column("document_name", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime, nullable=True),
    Column("completed_at", UtcDateTime, nullable=True),
    Column("output", JSONType, nullable=True),
    # Ground truth the output is scored against when the run completes.
    Column("expected", JSONType, nullable=True),
    Column("metrics", JSONType, nullable=True),
    # Copies of the common metrics, kept by the server when a run completes,
    # so that stats and compare aggregate plain columns on both dialects
    # instead of reaching into JSON with dialect-specific operators.
    Column("metric_precision", Double, nullable=True),
    Column("metric_recall", Double, nullable=True),
    Column("metric_f1", Double, nullable=True),
    Column("metric_latency_ms", Double, nullable=True),
    Column("cost_usd", Double, nullable=True),
    Column("tokens_input", Integer, nullable=True),
    Column("tokens_output", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("worker_id", Text, nullable=True),
    Column("lease_expires_at", UtcDateTime, nullable=True),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint(f"status IN ({_quoted(EXTRACTION_RUN_STATUSES)})", name="status"),
    CheckConstraint(
        "(tokens_input IS NULL OR tokens_input >= 0)"
        " AND (tokens_output IS NULL OR tokens_output >= 0)",
        name="tokens_non_negative",
    ),
    CheckConstraint("cost_usd IS NULL OR cost_usd >= 0", name="cost_non_negative"),
    CheckConstraint("attempts >= 0", name="attempts_non_negative"),
    CheckConstraint(
        "(status = 'pending' AND started_at IS NULL AND completed_at IS NULL)"
        " OR (status = 'running' AND started_at IS NOT NULL AND completed_at IS NULL)"
        " OR (status IN ('completed', 'failed') AND completed_at IS NOT NULL)",
        name="lifecycle",
    ),
)

# Lists are newest first by (created_at, id); each filter has an index ending
# in that pair. (status, created_at, id) also serves the claim, which takes the
# oldest pending runs, and (status, lease_expires_at) finds expired leases.
Index("ix_extraction_runs_created_at_id", extraction_runs.c.created_at, extraction_runs.c.id)
for _name in ("prompt_id", "config_id", "document_name", "status"):
    Index(
        f"ix_extraction_runs_{_name}_created_at_id",
        extraction_runs.c[_name],
        extraction_runs.c.created_at,
        extraction_runs.c.id,
    )
Index(
    "ix_extraction_runs_status_lease_expires_at",
    extraction_runs.c.status,
    extraction_runs.c.lease_expires_at,
)

# Hourly, daily and monthly aggregates of layer runs by (bucket, layer, status), kept
# exact in the same transaction as every insert, update and delete of a run.
# Sums are integers (cost in nano-dollars, duration in microseconds) so that
# adding and later subtracting a run's contribution leaves no rounding residue.
ROLLUP_GRAINS = ("hour", "day", "month")

# How big a sum can get. One run adds at most (runwatch.domain):
#   runs, completed_runs   1
#   insights               2**31 - 1              (a 32-bit count)       ~2.1e9
#   tokens                 2**31 - 1              (tokens_total, derived or given)
#   cost_nanousd           1e6 USD * 1e9          (MAX_LAYER_RUN_COST_USD)  1e15
#   duration_us            (now + 1 day - 2000-01-01) * 1e6, ~8.5e14 in 2026,
#                          growing 3.2e13 a year (the timestamp domain)
# The largest plausible bucket is a month of one layer and status at the write
# ceiling of one primary (5,000 runs/s, docs/scaling.md): 1.3e10 runs. At the
# maxima above that is 1.3e25 nano-dollars, more than BIGINT's 9.2e18, so on
# PostgreSQL the sums are NUMERIC(38, 0) (1e38: a bucket would need 1e23 runs at
# the largest cost, or 1e23 at the longest duration). SQLite has only 64-bit
# integers: there a bucket holds 9,223 runs at the largest cost, 10,800 at the
# longest duration (about 2,900 by 2100), and 4.3e9 at the largest token count;
# the embedded database is for one small deployment (see docs/security.md).
ROLLUP_SUM = BigInteger().with_variant(Numeric(38, 0), "postgresql")

layer_run_rollups = Table(
    "layer_run_rollups",
    metadata,
    Column("grain", Text, primary_key=True),
    Column("bucket_start", UtcDateTime, primary_key=True),
    Column("layer_name", Text, primary_key=True),
    Column("status", Text, primary_key=True),
    Column("runs", ROLLUP_SUM, nullable=False),
    Column("insights", ROLLUP_SUM, nullable=False),
    Column("tokens", ROLLUP_SUM, nullable=False),
    Column("cost_nanousd", ROLLUP_SUM, nullable=False),
    Column("duration_us", ROLLUP_SUM, nullable=False),
    Column("completed_runs", ROLLUP_SUM, nullable=False),
    CheckConstraint(f"grain IN ({_quoted(ROLLUP_GRAINS)})", name="grain"),
)
# The primary key serves windows over all layers; this one serves a window
# over one layer (and status) without reading the other layers' buckets.
Index(
    "ix_layer_run_rollups_grain_layer_name_status_bucket_start",
    layer_run_rollups.c.grain,
    layer_run_rollups.c.layer_name,
    layer_run_rollups.c.status,
    layer_run_rollups.c.bucket_start,
)

# Small named values shared by every API process: the data version that every
# write advances (the basis of ETags), and how far retention has purged.
runwatch_state = Table(
    "runwatch_state",
    metadata,
    Column("key", Text, primary_key=True),
    Column("number", BigInteger, nullable=True),
    Column("moment", UtcDateTime, nullable=True),
)
DATA_VERSION_KEY = "data_version"
PURGED_BEFORE_KEY = "layer_runs_purged_before"

# API keys: only a SHA-256 of each token is kept, so a copy of the database
# does not let anyone in. A revoked key keeps its row, for the audit trail.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("token_hash", Text, nullable=False),
    Column("prefix", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    CheckConstraint(f"scope IN ({_quoted(API_KEY_SCOPES)})", name="scope"),
)
Index("ix_api_keys_token_hash", api_keys.c.token_hash, unique=True)

# Error groups. Each error of a run has a fingerprint (see runwatch.fingerprints);
# `error_fingerprints` names each group once, `layer_run_errors` holds one row
# per (run, fingerprint) with the run's filter columns, and the rollups count
# errors and runs per hour and day. All three are kept in the writer's
# transaction and, like the run rollups, outlive a retention purge.
ERROR_ROLLUP_GRAINS = ("hour", "day")
NO_MODEL = ""  # model_name in the error rollups' key when the run names none

error_fingerprints = Table(
    "error_fingerprints",
    metadata,
    Column("fingerprint", Text, primary_key=True),
    Column("type", Text, nullable=False),
    Column("template", Text, nullable=False),
    Column("sample_message", Text, nullable=False),
)

layer_run_errors = Table(
    "layer_run_errors",
    metadata,
    Column("run_id", Text, primary_key=True),
    Column("fingerprint", Text, primary_key=True),
    Column("started_at", UtcDateTime, nullable=False),
    Column("layer_name", Text, nullable=False),
    Column("layer_hash", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("model_name", Text, nullable=True),
    Column("errors", BigInteger, nullable=False),
)
Index(
    "ix_layer_run_errors_fingerprint_started_at_run_id",
    layer_run_errors.c.fingerprint,
    layer_run_errors.c.started_at,
    layer_run_errors.c.run_id,
)
Index("ix_layer_run_errors_started_at", layer_run_errors.c.started_at)

layer_run_error_rollups = Table(
    "layer_run_error_rollups",
    metadata,
    Column("grain", Text, primary_key=True),
    Column("bucket_start", UtcDateTime, primary_key=True),
    Column("fingerprint", Text, primary_key=True),
    Column("layer_name", Text, primary_key=True),
    Column("layer_hash", Text, primary_key=True),
    Column("status", Text, primary_key=True),
    Column("model_name", Text, primary_key=True),
    Column("errors", BigInteger, nullable=False),
    Column("runs", BigInteger, nullable=False),
    Column("first_seen", UtcDateTime, nullable=True),
    Column("last_seen", UtcDateTime, nullable=True),
    CheckConstraint(f"grain IN ({_quoted(ERROR_ROLLUP_GRAINS)})", name="grain"),
)
Index(
    "ix_layer_run_error_rollups_grain_fingerprint_bucket_start",
    layer_run_error_rollups.c.grain,
    layer_run_error_rollups.c.fingerprint,
    layer_run_error_rollups.c.bucket_start,
)

# Layer versions: per hour and day, per (layer, layer_hash, status), the sums a
# version's row and the compare's tests need (sums of squares for Welch's test).
layer_run_version_rollups = Table(
    "layer_run_version_rollups",
    metadata,
    Column("grain", Text, primary_key=True),
    Column("bucket_start", UtcDateTime, primary_key=True),
    Column("layer_name", Text, primary_key=True),
    Column("layer_hash", Text, primary_key=True),
    Column("status", Text, primary_key=True),
    Column("runs", BigInteger, nullable=False),
    Column("completed_runs", BigInteger, nullable=False),
    Column("duration_us", BigInteger, nullable=False),
    Column("duration_sq", Double, nullable=False),
    Column("insights", BigInteger, nullable=False),
    Column("tokens", BigInteger, nullable=False),
    Column("cost_runs", BigInteger, nullable=False),
    Column("cost_nanousd", BigInteger, nullable=False),
    Column("cost_sq", Double, nullable=False),
    Column("first_seen", UtcDateTime, nullable=True),
    Column("last_seen", UtcDateTime, nullable=True),
    CheckConstraint(f"grain IN ({_quoted(ERROR_ROLLUP_GRAINS)})", name="grain"),
)
Index(
    "ix_layer_run_version_rollups_grain_layer_name_bucket_start",
    layer_run_version_rollups.c.grain,
    layer_run_version_rollups.c.layer_name,
    layer_run_version_rollups.c.bucket_start,
)

# Duration histograms per hour and day, per (layer, layer_hash): how many
# completed runs fell in each logarithmic bin (see runwatch.percentiles), so
# that p50/p95/p99 over any window come from bin counts, within 2%.
layer_run_duration_bins = Table(
    "layer_run_duration_bins",
    metadata,
    Column("grain", Text, primary_key=True),
    Column("bucket_start", UtcDateTime, primary_key=True),
    Column("layer_name", Text, primary_key=True),
    Column("layer_hash", Text, primary_key=True),
    Column("bin", Integer, primary_key=True, autoincrement=False),
    Column("runs", BigInteger, nullable=False),
    CheckConstraint(f"grain IN ({_quoted(ERROR_ROLLUP_GRAINS)})", name="grain"),
)
Index(
    "ix_layer_run_duration_bins_grain_layer_name_bucket_start",
    layer_run_duration_bins.c.grain,
    layer_run_duration_bins.c.layer_name,
    layer_run_duration_bins.c.bucket_start,
)

# How many writes have changed the layer runs that started in each hour, day
# and month: every write adds one to each bucket its runs (added or removed)
# started in, in the writer's transaction, and a rebuild adds one to every
# bucket. A sum over whole buckets therefore changes whenever anything the
# rollups hold for them does; readers reuse aggregates of unchanged buckets.
layer_run_bucket_changes = Table(
    "layer_run_bucket_changes",
    metadata,
    Column("grain", Text, primary_key=True),
    Column("bucket_start", UtcDateTime, primary_key=True),
    Column("changes", BigInteger, nullable=False),
    CheckConstraint(f"grain IN ({_quoted(ROLLUP_GRAINS)})", name="grain"),
)
