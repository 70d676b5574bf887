"""schemathesis over every operation of the app's own OpenAPI schema: no 5xx, answers as documented.

Runs in-process over ASGI, on SQLite and on a private PostgreSQL, with a bounded
number of examples per operation (`RUNWATCH_FUZZ_EXAMPLES`, default 50), valid
and invalid inputs.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from runwatch.app import create_app
from runwatch.config import Settings
from tests.conftest import PostgresAdmin
from tests.support.postgres import (
    PostgresUnavailable,
    TemporaryPostgres,
    fail_if_required,
    find_bindir,
)

EXAMPLES = int(os.environ.get("RUNWATCH_FUZZ_EXAMPLES", "50"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    allow_header_conformance,
]
CASES: dict[str, dict[str, int]] = {"sqlite": {}, "postgresql": {}}
GENERATION = {
    "modes": [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    "max_examples": EXAMPLES,
    "deterministic": True,
}


class _PostgresApp:
    """The app over a private PostgreSQL that starts with the app's lifespan, not at import."""

    def __init__(self) -> None:
        self.server: TemporaryPostgres | None = None
        self.database_url: str | None = None
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.app is None:
            admin_url = os.environ.get("RUNWATCH_TEST_POSTGRES_URL")
            if admin_url:  # the suite's PostgreSQL: a database of our own on it
                admin = PostgresAdmin(admin_url)
                self.database_url = await asyncio.to_thread(admin.create_database, "runwatch_fuzz")
                url = self.database_url
            else:
                self.server = TemporaryPostgres()
                self.server.start()
                url = self.server.url
            self.app = create_app(Settings(database_url=url, auto_migrate=True))
        await self.app(scope, receive, send)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self.database_url is not None:
            PostgresAdmin(os.environ["RUNWATCH_TEST_POSTGRES_URL"]).drop_database(self.database_url)


def _postgres_available() -> bool:
    if os.environ.get("RUNWATCH_TEST_POSTGRES_URL"):
        return True
    try:
        find_bindir()
    except PostgresUnavailable as exc:
        fail_if_required(exc)
        return False
    return True


# The schema is needed when tests are collected, so the apps are built at import;
# their lifespans (and databases) only start with the first request.
_DB_DIR = Path(tempfile.mkdtemp(prefix="runwatch-fuzz-"))
_APP = create_app(Settings(database_url=f"sqlite+aiosqlite:///{_DB_DIR / 'fuzz.db'}"))
_PG_APP = _PostgresApp()
schema = schemathesis.openapi.from_dict(_APP.openapi())
schema.app = _APP
schema.config.generation.update(**GENERATION)
pg_schema = schemathesis.openapi.from_dict(_APP.openapi())
pg_schema.app = _PG_APP
pg_schema.config.generation.update(**GENERATION)


@pytest.fixture(scope="module", autouse=True)
def _fuzz_apps() -> Iterator[None]:
    yield
    shutdown_lifespans()
    _PG_APP.stop()
    shutil.rmtree(_DB_DIR, ignore_errors=True)
    for dialect, cases in CASES.items():
        print(f"\nschemathesis {dialect}: {sum(cases.values())} cases over {len(cases)} operations")


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


@schema.parametrize()
@FUZZ_SETTINGS
def test_no_server_errors_and_documented_answers(case: schemathesis.Case) -> None:
    cases = CASES["sqlite"]
    cases[case.operation.label] = cases.get(case.operation.label, 0) + 1
    case.call_and_validate(checks=CHECKS)


@pg_schema.parametrize()
@FUZZ_SETTINGS
def test_no_server_errors_and_documented_answers_on_postgres(case: schemathesis.Case) -> None:
    if not _postgres_available():
        pytest.skip("no PostgreSQL server binaries")
    cases = CASES["postgresql"]
    cases[case.operation.label] = cases.get(case.operation.label, 0) + 1
    case.call_and_validate(checks=CHECKS)
