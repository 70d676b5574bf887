"""A throwaway PostgreSQL server started from the installed binaries on a free port."""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ADMIN_USER = "postgres"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def find_bindir() -> Path:
    """The directory holding `initdb` and `pg_ctl`: PATH, pg_config, or Debian's layout."""
    candidates = []
    if os.environ.get("RUNWATCH_PG_BINDIR"):
        candidates.append(Path(os.environ["RUNWATCH_PG_BINDIR"]))
    debian = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True
    )
    candidates += [Path(p) for p in debian]
    for tool in ("pg_ctl", "initdb"):
        found = shutil.which(tool)
        if found:
            candidates.append(Path(found).parent)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    raise PostgresUnavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl) found; install the `postgresql` package "
        "or set RUNWATCH_TEST_POSTGRES_URL"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TemporaryPostgres:
    """Start a private cluster in a temporary directory; `stop()` ends it and removes it.

    PostgreSQL refuses to run as root, so when we are root the server runs as
    the `postgres` system user (created by Debian's packages).
    """

    def __init__(self, *, options: dict[str, str] | None = None, durable: bool = False) -> None:
        self.bindir = find_bindir()
        self.port = free_port()
        self.options = {
            "listen_addresses": "127.0.0.1",
            "max_connections": "200",
            "shared_buffers": "128MB",
        }
        if not durable:
            # A test cluster needs no crash safety; skipping fsync makes it fast.
            self.options.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        self.options.update(options or {})
        self.base = Path(tempfile.mkdtemp(prefix="runwatch-pg-"))
        self.datadir = self.base / "data"
        self.logfile = self.base / "server.log"
        self._user = self._server_user()
        self.pid: int | None = None

    @staticmethod
    def _server_user() -> str | None:
        if os.geteuid() != 0:
            return None
        for name in ("postgres", "nobody"):
            try:
                pwd.getpwnam(name)
                return name
            except KeyError:
                continue
        raise PostgresUnavailable("running as root and no unprivileged user to run PostgreSQL")

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, check=True, capture_output=True, text=True, user=self._user, cwd=self.base
        )

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{ADMIN_USER}@127.0.0.1:{self.port}/postgres"

    def url_for(self, database: str) -> str:
        return f"postgresql+asyncpg://{ADMIN_USER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> str:
        if self._user:
            pw = pwd.getpwnam(self._user)
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
        self._create_cluster()
        self._start_server()
        return self.url

    def _create_cluster(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            "-D", str(self.datadir),
            "-U", ADMIN_USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )  # fmt: skip

    def _start_server(self) -> None:
        opts = " ".join(f"-c {key}={value}" for key, value in self.options.items())
        try:
            self._run(
                str(self.bindir / "pg_ctl"),
                "-D", str(self.datadir),
                "-l", str(self.logfile),
                "-o", f"-p {self.port} -k {self.base} {opts}",
                "-w", "-t", "60",
                "start",
            )  # fmt: skip
        except subprocess.CalledProcessError as exc:
            log = self.logfile.read_text() if self.logfile.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {exc.stderr}\n{log}") from exc
        pidfile = self.datadir / "postmaster.pid"
        self.pid = int(pidfile.read_text().splitlines()[0])

    def stop_server(self) -> None:
        """Stop the server but keep its data, so that `start_server()` brings it back."""
        if self.pid is not None:
            subprocess.run(
                [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop"],
                capture_output=True,
                user=self._user,
                cwd=self.base,
                check=False,
            )
            self.pid = None

    def start_server(self) -> None:
        """Start a server stopped by `stop_server()` again, on the same port and data."""
        self._start_server()

    def stop(self) -> None:
        self.stop_server()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> TemporaryPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def fail_if_required(exc: PostgresUnavailable) -> None:
    """Fail the test when RUNWATCH_REQUIRE_POSTGRES=1 says a missing PostgreSQL is an error."""
    import pytest

    if os.environ.get("RUNWATCH_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required (RUNWATCH_REQUIRE_POSTGRES=1): {exc}")


@contextmanager
def running_postgres(*, migrated: bool = False) -> Iterator[TemporaryPostgres]:
    """A started TemporaryPostgres for a test fixture (migrated to head with `migrated`).

    Without PostgreSQL server binaries the tests using it are skipped, or fail
    under RUNWATCH_REQUIRE_POSTGRES=1. The server is stopped and removed after.
    """
    import pytest

    try:
        server = TemporaryPostgres()
        server.start()
    except PostgresUnavailable as exc:
        fail_if_required(exc)
        pytest.skip(f"PostgreSQL tests skipped: {exc}")
    try:
        if migrated:
            from runwatch.migrate import upgrade

            asyncio.run(upgrade(server.url))
        yield server
    finally:
        server.stop()
