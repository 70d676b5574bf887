"""Under the CI flags a skipped test is a failure, so CI cannot pass with tests unseen."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SKIPPING = """
import pytest

def test_skips():
    pytest.skip("something is missing")
"""


def test_a_skip_fails_under_the_ci_flags(tmp_path: Path) -> None:
    probe = ROOT / "tests" / f"test_probe_skip_{os.getpid()}.py"
    probe.write_text(SKIPPING)
    try:
        base = {k: v for k, v in os.environ.items() if not k.startswith("RUNWATCH_REQUIRE_")}
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(probe)]
        strict = subprocess.run(
            command,
            env={**base, "RUNWATCH_REQUIRE_POSTGRES": "1", "RUNWATCH_REQUIRE_BROWSER": "1"},
            cwd=ROOT, capture_output=True, text=True,
        )  # fmt: skip
        relaxed = subprocess.run(command, env=base, cwd=ROOT, capture_output=True, text=True)
    finally:
        probe.unlink()
    assert strict.returncode == 1, strict.stdout
    assert "1 failed" in strict.stdout
    assert "a skip would hide a test from CI" in strict.stdout
    assert relaxed.returncode == 0, relaxed.stdout
    assert "1 skipped" in relaxed.stdout
