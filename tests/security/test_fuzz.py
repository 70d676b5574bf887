"""schemathesis over every operation of the app's own OpenAPI schema: no 5xx, answers as documented.

Runs in-process over ASGI on SQLite with a bounded number of examples per
operation (`RUNWATCH_FUZZ_EXAMPLES`, default 50), valid and invalid inputs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from runwatch.app import create_app
from runwatch.config import Settings

EXAMPLES = int(os.environ.get("RUNWATCH_FUZZ_EXAMPLES", "50"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
CASES: dict[str, int] = {}


# The schema is needed when tests are collected, so the app is built at import;
# its lifespan (and the database) only starts with the first request.
_DB_DIR = Path(tempfile.mkdtemp(prefix="runwatch-fuzz-"))
_APP = create_app(Settings(database_url=f"sqlite+aiosqlite:///{_DB_DIR / 'fuzz.db'}"))
schema = schemathesis.openapi.from_dict(_APP.openapi())
schema.app = _APP
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=EXAMPLES,
    deterministic=True,
)


@pytest.fixture(scope="module", autouse=True)
def _fuzz_app() -> Iterator[None]:
    yield
    shutdown_lifespans()
    shutil.rmtree(_DB_DIR, ignore_errors=True)
    print(f"\nschemathesis: {sum(CASES.values())} cases over {len(CASES)} operations")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors_and_documented_answers(case: schemathesis.Case) -> None:
    key = case.operation.label
    CASES[key] = CASES.get(key, 0) + 1
    case.call_and_validate(checks=CHECKS)
