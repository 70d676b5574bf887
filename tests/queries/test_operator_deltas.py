"""A write's error-group deltas do not depend on the process (its hash seed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
from datetime import UTC, datetime
from runwatch.queries.operator_deltas import error_changes

def run(n, message):
    return {
        "id": f"run-{n}", "started_at": datetime(2026, 11, 1, n, tzinfo=UTC),
        "layer_name": "digest", "layer_hash": "v1", "status": "failed", "model_name": None,
        "errors": [{"type": "Timeout", "message": message}],
    }

runs = [run(n, f"request {n} timed out after {n} seconds") for n in range(1, 9)]
changes = error_changes(runs, [])
print(sorted((f["fingerprint"], f["sample_message"]) for f in changes.fingerprints))
"""


def test_sample_message_is_the_first_runs_whatever_the_hash_seed() -> None:
    answers = set()
    for seed in ("0", "1", "2", "3", "4", "5"):
        done = subprocess.run(
            [sys.executable, "-c", PROBE],
            env={**os.environ, "PYTHONHASHSEED": seed},
            cwd=ROOT, capture_output=True, text=True, check=True,
        )  # fmt: skip
        answers.add(done.stdout.strip())
    assert len(answers) == 1, answers
    (answer,) = answers
    assert "request 1 timed out after 1 seconds" in answer, answer
