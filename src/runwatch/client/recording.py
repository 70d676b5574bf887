"""`record_run`'s side of a run: the counters set while it runs, and the bodies it sends."""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from ulid import ULID

from runwatch.client.errors import RunwatchError, describe
from runwatch.schemas.layer_runs import LayerRunDetail


@dataclass
class RecordedRun:
    """The run `record_run` is recording: set its counters while it runs.

    On a clean exit the run is completed with `status` (default `success`);
    when the block raises, it is `failed` and the exception is appended to
    `errors` as `{"type", "message", "traceback"}`.
    """

    id: str
    layer_name: str
    layer_hash: str
    started_at: datetime
    status: Literal["success", "partial", "failed", "dry"] | None = None
    targets_matched: int = 0
    targets_processed: int = 0
    targets_skipped: int = 0
    insights_created: int = 0
    tokens_input: int | None = None
    tokens_output: int | None = None
    tokens_total: int | None = None
    estimated_cost_usd: float | None = None
    model_profile: str | None = None
    model_provider: str | None = None
    model_name: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    detail: LayerRunDetail | None = None
    """The stored run once the block has exited."""

    def creation(self) -> dict[str, Any]:
        """The body that records the run as running."""
        body = {
            "id": self.id,
            "layer_name": self.layer_name,
            "layer_hash": self.layer_hash,
            "status": "running",
            "started_at": self.started_at,
        }
        for name in ("model_profile", "model_provider", "model_name"):
            if getattr(self, name) is not None:
                body[name] = getattr(self, name)
        return body

    def completion(self, exc: BaseException | None) -> dict[str, Any]:
        """The changes that complete the run, or fail it with `exc`."""
        if exc is not None:
            self.errors.append(
                {
                    "type": type(exc).__name__,
                    "message": str(exc)[:10_000],
                    "traceback": "".join(traceback.format_exception(exc))[-10_000:],
                }
            )
        status = "failed" if exc is not None else (self.status or "success")
        body: dict[str, Any] = {"status": status}
        for name in (
            "targets_matched",
            "targets_processed",
            "targets_skipped",
            "insights_created",
            "tokens_input",
            "tokens_output",
            "tokens_total",
            "estimated_cost_usd",
            "model_profile",
            "model_provider",
            "model_name",
        ):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        if self.errors:
            body["errors"] = self.errors
        return body

    def unreported(self, exc: BaseException, report: RunwatchError) -> None:
        """Say on `exc` that the run could not be marked failed, and why."""
        exc.add_note(f"runwatch: run {self.id} was not marked failed: {describe(report)}")


def new_recorded_run(layer_name: str, layer_hash: str, fields: Mapping[str, Any]) -> RecordedRun:
    """The run `record_run` records: `fields` are its model fields, and may give its `id`."""
    return RecordedRun(
        id=fields.get("id") or str(ULID()),
        layer_name=layer_name,
        layer_hash=layer_hash,
        started_at=datetime.now(UTC),
        **{k: v for k, v in fields.items() if k != "id"},
    )
