"""Settings: one pydantic-settings class read from `RUNWATCH_*` environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from runwatch.domain import MAX_BATCH_RUNS

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./runwatch.db"

# URLs without a driver, or with another driver's name, mean the one runwatch ships with.
_DRIVERS = {
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+psycopg": "postgresql+asyncpg",
    "postgresql+psycopg2": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "sqlite+pysqlite": "sqlite+aiosqlite",
}
_SUPPORTED = ("postgresql+asyncpg", "sqlite+aiosqlite")


def normalize_database_url(url: str) -> str:
    """`postgresql://…` as `postgresql+asyncpg://…`, `sqlite:///…` as `sqlite+aiosqlite:///…`."""
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(
            f"not a database URL: {url!r} (expected sqlite:///path.db or postgresql://host/db)"
        )
    scheme = _DRIVERS.get(scheme.lower(), scheme.lower())
    if scheme not in _SUPPORTED:
        raise ValueError(
            f"unsupported database URL scheme {url.partition('://')[0]!r} "
            "(expected sqlite:///path.db or postgresql://host/db)"
        )
    return f"{scheme}://{rest}"


class Settings(BaseSettings):
    """Everything that can be configured; every field is `RUNWATCH_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="RUNWATCH_", extra="ignore")

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL: sqlite+aiosqlite:///path.db or postgresql+asyncpg://…",
    )
    read_database_url: str = Field(
        "",
        description="PostgreSQL read replicas, comma-separated; lists, details and stats are "
        "read there (writes always go to the primary).",
    )
    replica_retry_seconds: float = Field(
        10.0, gt=0, description="How long a replica that failed is skipped before a retry."
    )
    host: str = Field("127.0.0.1", description="Address `runwatch serve` binds to.")
    port: int = Field(8000, ge=1, le=65535, description="Port `runwatch serve` listens on.")
    log_format: Literal["text", "json"] = Field(
        "text", description="`json` for one JSON object per log line, `text` for plain lines."
    )
    workers: int = Field(
        1, ge=1, le=64, description="Worker processes of `runwatch serve` (each has its own pool)."
    )
    shutdown_grace_seconds: float = Field(
        30.0, gt=0, description="On SIGTERM, how long requests in flight may take to finish."
    )
    auto_migrate: bool | None = Field(
        None,
        description="Upgrade the schema at start. Default: on for SQLite, off for PostgreSQL.",
    )

    default_page_size: int = Field(20, ge=1, description="`limit` when none is given.")
    max_page_size: int = Field(100, ge=1, description="Largest `limit` accepted (422 above).")
    max_offset: int = Field(
        100_000,
        ge=0,
        description="Largest `offset` accepted (422 above); use `cursor` to go deeper.",
    )
    max_batch_size: int = Field(
        1000,
        ge=1,
        le=MAX_BATCH_RUNS,
        description=f"Most runs in one `POST /runs/batch` (at most {MAX_BATCH_RUNS:,}).",
    )
    max_body_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="Largest request body in bytes (413 above)."
    )
    max_stats_days: int = Field(
        30, ge=1, description="Largest `days` for the summary and hourly timeseries."
    )
    max_daily_timeseries_days: int = Field(
        366, ge=1, description="Largest `days` for the daily timeseries."
    )
    stats_etag_seconds: int = Field(
        10,
        ge=1,
        le=3600,
        description="Rolling windows (the summary, the timeseries) move in steps of this many "
        "seconds: `days=7` means from the start of the current step, 7 days back.",
    )
    response_cache_bytes: int = Field(
        16 * 1024 * 1024,
        ge=0,
        description="Bytes of encoded answers kept per process by ETag, so that polls without "
        "`If-None-Match` of unchanged data run no query (0 = off).",
    )
    rollup_cache_rows: int = Field(
        200_000,
        ge=0,
        description="Rollup rows' worth of aggregates of whole hours, days and months kept per "
        "process, reused while no write changes those buckets (0 = off).",
    )

    regression_min_runs: int = Field(
        20,
        ge=2,
        description="Finished runs each of a layer's two newest versions needs in the window "
        "before `GET /runs/stats/regressions` compares them.",
    )

    stuck_p95_multiple: float = Field(
        3.0,
        gt=0,
        description="A running layer run is stuck after this multiple of its layer's p95 "
        "duration over the last 7 days (but never before `RUNWATCH_STUCK_FLOOR_SECONDS`).",
    )
    stuck_floor_seconds: float = Field(
        1800.0, gt=0, description="No running run is stuck before this many seconds."
    )
    stuck_after_seconds: str = Field(
        "",
        description="Fixed thresholds that replace the default: `3600` for every layer, or "
        "`nightly-user-reflection=7200,other=600` per layer (a bare number is the default "
        "for the layers not named).",
    )

    extraction_default_lease_seconds: int = Field(
        300, ge=1, description="Lease given to a claimed extraction run when none is asked for."
    )
    extraction_max_lease_seconds: int = Field(
        3600, ge=1, description="Longest lease a worker may ask for (422 above)."
    )
    extraction_max_attempts: int = Field(
        3,
        ge=1,
        description="Claims an extraction run gets; when its lease expires on the last one, "
        "the run is failed instead of going back to pending.",
    )
    extraction_max_compare_documents: int = Field(
        10_000, ge=1, description="Most documents one group comparison covers (422 above)."
    )

    # Every connection is kept: an overflow one is closed when it is given back,
    # so a burst beyond the kept ones opened and closed a connection per request
    # (a server process, its settings, every statement prepared again), which
    # halved a worker's throughput at 16 concurrent requests.
    db_pool_size: int = Field(
        20, ge=1, description="PostgreSQL connections a process opens as needed and keeps."
    )
    db_max_overflow: int = Field(
        0, ge=0, description="Extra connections under load, closed again as each is given back."
    )
    db_pool_timeout: float = Field(
        5.0, gt=0, description="Seconds a request waits for a pooled connection before 503."
    )
    db_connect_timeout: float = Field(
        5.0, gt=0, description="Seconds to wait when opening a database connection."
    )
    db_statement_timeout_ms: int = Field(
        15_000, ge=0, description="PostgreSQL statement_timeout per connection (0 = none)."
    )
    retry_after_seconds: int = Field(
        5, ge=1, description="`Retry-After` sent with 503 answers while the database is away."
    )

    @property
    def read_database_urls(self) -> list[str]:
        return [url.strip() for url in self.read_database_url.split(",") if url.strip()]

    api_key_cache_seconds: float = Field(
        5.0,
        ge=0,
        description="How long a process keeps the set of active API keys before reloading it: "
        "a key created or revoked elsewhere takes effect within this time (0 = every request).",
    )
    insecure: bool = Field(
        False,
        description="Serve without API keys on a non-loopback address (otherwise refused).",
    )
    cors_origins: str = Field(
        "",
        description="Origins allowed to call the API from a browser, comma-separated "
        "(`https://a.example,https://b.example`); empty = CORS off.",
    )

    @property
    def stuck_overrides(self) -> tuple[float | None, dict[str, float]]:
        """`RUNWATCH_STUCK_AFTER_SECONDS` as (threshold for every layer, per-layer thresholds)."""
        every: float | None = None
        per_layer: dict[str, float] = {}
        for item in (part.strip() for part in self.stuck_after_seconds.split(",")):
            if not item:
                continue
            name, _, value = item.rpartition("=")
            seconds = float(value)
            if not seconds > 0 or seconds == float("inf"):
                raise ValueError(f"stuck_after_seconds: {value!r} is not a positive number")
            if name:
                per_layer[name.strip()] = seconds
            else:
                every = seconds
        return every, per_layer

    @model_validator(mode="after")
    def _stuck_overrides_parse(self) -> Settings:
        try:
            self.stuck_overrides  # noqa: B018 - parsed here so that a typo fails at start
        except ValueError as exc:
            raise ValueError(f"stuck_after_seconds: {exc}") from exc
        return self

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return normalize_database_url(value)

    @field_validator("read_database_url")
    @classmethod
    def _read_database_url(cls, value: str) -> str:
        urls = [url.strip() for url in value.split(",") if url.strip()]
        return ",".join(normalize_database_url(url) for url in urls)

    @model_validator(mode="after")
    def _default_page_fits(self) -> Settings:
        # Otherwise every request without `limit` would be refused.
        if self.default_page_size > self.max_page_size:
            raise ValueError(
                f"default_page_size ({self.default_page_size}) must not exceed "
                f"max_page_size ({self.max_page_size})"
            )
        return self

    @property
    def cors_origin_list(self) -> list[str]:
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def should_auto_migrate(self) -> bool:
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate
