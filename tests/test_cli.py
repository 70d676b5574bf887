"""The command line as a person meets it: one-line errors with exit 2, help, versions, migrate."""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from runwatch import __version__
from runwatch.cli import build_parser
from runwatch.config import normalize_database_url
from runwatch.migrate import database_revision, revision_history
from tests.support.postgres import free_port

HEAD = revision_history()[-1]


def clean_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("RUNWATCH_")}
    return {**env, **extra}


def runwatch(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, user: int | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runwatch", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env if env is not None else clean_env(),
        timeout=120,
        check=False,
        user=user,
    )


def assert_one_line_error(done: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Exit 2 and a single `runwatch: error: …` line on stderr, naming each fragment."""
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    (line,) = lines
    assert line.startswith("runwatch: error: "), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


def sqlite_url(path: Path, scheme: str = "sqlite+aiosqlite") -> str:
    return f"{scheme}:///{path}"


def alembic_version(path: Path) -> str | None:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT version_num FROM alembic_version").fetchall()
    return rows[0][0] if rows else None


# -- help and version --------------------------------------------------------------


def test_version() -> None:
    done = runwatch("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"runwatch {__version__}"


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found += _parsers(child)
    return found


def test_every_option_and_command_has_help() -> None:
    missing = []
    for parser in _parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                missing += [
                    f"{parser.prog} {choice.dest}"
                    for choice in action._choices_actions
                    if not choice.help
                ]
            elif not action.help:
                missing.append(f"{parser.prog} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_top_level_help_speaks_to_users() -> None:
    done = runwatch("--help")
    assert done.returncode == 0
    text = done.stdout
    for command in ("serve", "migrate", "demo-data", "purge", "rebuild-rollups", "keys", "worker"):
        assert command in text
    assert "--version" in text
    assert "runwatch serve --demo" in text  # an example to start from
    assert "no logic" not in text
    assert "Parses arguments" not in text


# -- bad input: one line, exit 2 ---------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["serve", "--port", "99999"], ["--port", "99999"]),
        (["serve", "--port", "http"], ["--port", "'http'"]),
        (["serve", "--log-level", "banana"], ["--log-level", "banana"]),
        (["serve", "--workers", "0"], ["--workers"]),
        (["worker", "--batch", "500", "--command", "true"], ["--batch", "500"]),
        (["worker", "--lease-seconds", "0", "--command", "true"], ["--lease-seconds"]),
        (["worker", "--poll-interval", "nan", "--command", "true"], ["--poll-interval"]),
        (["purge", "--older-than", "90d", "--batch-size", "0"], ["--batch-size", "0"]),
        (["purge", "--older-than", "90d", "--batch-size", "-1"], ["--batch-size", "-1"]),
        (["purge", "--older-than", "ninety"], ["--older-than", "ninety"]),
        (["demo-data", "--runs", "-5"], ["--runs"]),
        (["migrate", "--revision", "banana"], ["--revision", "banana"]),
        (["frobnicate"], ["frobnicate"]),
        ([], ["COMMAND"]),
    ],
)
def test_bad_arguments_are_one_line(tmp_path: Path, args: list[str], fragments: list[str]) -> None:
    db = tmp_path / "runwatch.db"
    done = runwatch("--database-url", sqlite_url(db), *args, cwd=tmp_path)
    assert_one_line_error(done, *fragments)
    # Nothing was created for a command that was refused.
    assert not db.exists()


def test_purge_refuses_batch_size_zero_even_when_called_directly() -> None:
    from runwatch.services.retention import purge_layer_runs

    with pytest.raises(ValueError, match="at least 1"):
        asyncio.run(purge_layer_runs(None, before=None, batch_size=0))  # type: ignore[arg-type]


def test_unreachable_postgresql_is_one_line() -> None:
    url = f"postgresql://runwatch@127.0.0.1:{free_port()}/runwatch"
    for command in (["migrate"], ["serve", "--port", str(free_port())], ["keys", "list"]):
        line = assert_one_line_error(runwatch("--database-url", url, *command))
        assert "cannot use the database at postgresql+asyncpg://runwatch@127.0.0.1" in line


def test_a_public_bind_without_keys_is_one_line(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "r.db")
    assert runwatch("--database-url", url, "migrate").returncode == 0
    done = runwatch("--database-url", url, "serve", "--host", "0.0.0.0")
    assert_one_line_error(done, "Refusing to serve on 0.0.0.0", "runwatch keys create")


def test_unsupported_database_urls_are_one_line() -> None:
    assert_one_line_error(runwatch("--database-url", "mysql://db/x", "migrate"), "'mysql'")
    assert_one_line_error(runwatch("--database-url", "runwatch.db", "migrate"), "runwatch.db")
    env = clean_env(RUNWATCH_DATABASE_URL="oracle://x/y")
    assert_one_line_error(runwatch("migrate", env=env), "'oracle'")
    assert_one_line_error(runwatch("migrate", env=clean_env(RUNWATCH_PORT="http")), "port")


def test_missing_directory_for_sqlite_names_the_path(tmp_path: Path) -> None:
    db = tmp_path / "no" / "such" / "dir" / "runwatch.db"
    for command in (["migrate"], ["serve"], ["demo-data", "--runs", "10"], ["keys", "list"]):
        done = runwatch("--database-url", sqlite_url(db), *command)
        assert_one_line_error(done, str(db), "does not exist")
    assert not (tmp_path / "no").exists()


def test_read_only_directory_for_sqlite_names_the_path(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root writes into any mode-555 directory, but not into sysfs.
        directory = Path("/sys")
    else:
        directory = tmp_path / "read-only"
        directory.mkdir()
        directory.chmod(0o555)
    try:
        db = directory / "runwatch.db"
        for command in (["migrate"], ["serve"], ["demo-data"]):
            done = runwatch("--database-url", sqlite_url(db), *command, cwd=tmp_path)
            assert_one_line_error(done, str(db), f"the directory {directory} is not writable")
        assert not db.exists()
    finally:
        if directory != Path("/sys"):
            directory.chmod(0o755)


def test_purge_and_rebuild_on_a_fresh_file_create_nothing(tmp_path: Path) -> None:
    db = tmp_path / "fresh.db"
    for command in (["purge", "--older-than", "90d"], ["rebuild-rollups"]):
        done = runwatch("--database-url", sqlite_url(db), *command)
        assert_one_line_error(done, f"no database at {db}", "runwatch migrate")
        assert not db.exists()


def test_postgresql_without_auto_migrate_refuses_an_unmigrated_database(
    postgres_admin: object,
) -> None:
    url = postgres_admin.create_database()  # type: ignore[attr-defined]
    try:
        for command in (["purge", "--older-than", "1d"], ["serve", "--port", str(free_port())]):
            done = runwatch("--database-url", url, *command)
            assert_one_line_error(done, "run `runwatch migrate`", "nothing")
    finally:
        postgres_admin.drop_database(url)  # type: ignore[attr-defined]


def test_executor_module_is_found_in_the_working_directory(tmp_path: Path) -> None:
    # The installed script, whose sys.path does not hold the working directory.
    script = Path(sys.executable).parent / "runwatch"
    (tmp_path / "myextract.py").write_text("def run(run):\n    return {'output': {}}\n")
    done = subprocess.run(
        [str(script), "worker", "--executor", "myextract:missing", "--exit-when-idle"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env(),
        timeout=120,
        check=False,
    )
    # The module was found: what is missing is the function, said in one line.
    assert_one_line_error(done, "myextract:missing", "missing")
    done = subprocess.run(
        [str(script), "worker", "--executor", "nosuchmodule:run", "--exit-when-idle"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env(),
        timeout=120,
        check=False,
    )
    assert_one_line_error(done, "No module named 'nosuchmodule'")


# -- URLs without a driver -----------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql://u:p@h:5432/db", "postgresql+asyncpg://u:p@h:5432/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:///./x.db", "sqlite+aiosqlite:///./x.db"),
        ("sqlite:////abs/x.db", "sqlite+aiosqlite:////abs/x.db"),
        ("SQLITE+AIOSQLITE:///x.db", "sqlite+aiosqlite:///x.db"),
    ],
)
def test_urls_without_a_driver_use_the_shipped_one(given: str, used: str) -> None:
    assert normalize_database_url(given) == used


def test_sqlite_url_without_a_driver_works(tmp_path: Path) -> None:
    done = runwatch("--database-url", "sqlite:///plain.db", "migrate", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert alembic_version(tmp_path / "plain.db") == HEAD


def test_postgresql_url_without_a_driver_works(postgres_admin: object) -> None:
    url = postgres_admin.create_database()  # type: ignore[attr-defined]
    try:
        plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        assert plain.startswith("postgresql://")
        done = runwatch("--database-url", plain, "migrate")
        assert done.returncode == 0, done.stderr
        assert asyncio.run(database_revision(url)) == HEAD
    finally:
        postgres_admin.drop_database(url)  # type: ignore[attr-defined]


# -- migrate says what it did ------------------------------------------------------


@pytest.fixture
def migration_url(dialect: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    if dialect == "sqlite":
        yield sqlite_url(tmp_path / "migrate.db")
        return
    admin = request.getfixturevalue("postgres_admin")
    url = admin.create_database()
    try:
        yield url
    finally:
        admin.drop_database(url)


def test_migrate_tells_the_truth_and_downgrades_only_when_asked(migration_url: str) -> None:
    url = migration_url
    history = revision_history()
    older = history[1]

    done = runwatch("--database-url", url, "migrate")
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == f"runwatch: database migrated from base to {HEAD}"
    assert asyncio.run(database_revision(url)) == HEAD

    done = runwatch("--database-url", url, "migrate")
    assert done.returncode == 0
    assert done.stderr.strip() == f"runwatch: database already at {HEAD}"

    # An older revision without --downgrade: refused, and nothing changes.
    done = runwatch("--database-url", url, "migrate", "--revision", older)
    assert_one_line_error(done, f"at {HEAD}", f"later than {older}", "--downgrade")
    assert asyncio.run(database_revision(url)) == HEAD

    done = runwatch("--database-url", url, "migrate", "--revision", older, "--downgrade")
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == f"runwatch: database downgraded from {HEAD} to {older}"
    assert asyncio.run(database_revision(url)) == older

    # --downgrade to a later revision is a contradiction, not an upgrade.
    done = runwatch("--database-url", url, "migrate", "--revision", HEAD, "--downgrade")
    assert_one_line_error(done, "--downgrade")
    assert asyncio.run(database_revision(url)) == older

    done = runwatch("--database-url", url, "migrate")
    assert done.stderr.strip() == f"runwatch: database migrated from {older} to {HEAD}"
    assert asyncio.run(database_revision(url)) == HEAD


# -- quiet by default --------------------------------------------------------------


def test_commands_are_quiet(tmp_path: Path) -> None:
    db = tmp_path / "quiet.db"
    url = sqlite_url(db)
    done = runwatch("--database-url", url, "demo-data", "--runs", "50")
    assert done.returncode == 0, done.stderr
    assert "alembic" not in done.stderr
    # Not a terminal: no progress bar, only what was done, a line each.
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 3, lines
    assert lines[0] == f"runwatch: database migrated from base to {HEAD}"
    assert lines[1].startswith("runwatch: inserted ")
    assert lines[1].endswith(" demo extraction runs")
    assert lines[2] == "runwatch: inserted 50 demo layer runs"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM layer_runs").fetchone() == (50,)

    done = runwatch("--database-url", url, "rebuild-rollups")
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "runwatch: rollups rebuilt from the raw runs"

    # The demo spreads runs over 30 days: a purge of those older than 5 days
    # deletes some in batches of 7, and says how many.
    done = runwatch("--database-url", url, "purge", "--older-than", "5d", "--batch-size", "7")
    assert done.returncode == 0, done.stderr
    (line,) = done.stderr.strip().splitlines()
    with sqlite3.connect(db) as conn:
        left = conn.execute("SELECT count(*) FROM layer_runs").fetchone()[0]
    assert 0 < left < 50
    assert line.startswith(f"runwatch: purged {50 - left} layer runs started before ")


def _serve_and_poll(tmp_path: Path, env: dict[str, str]) -> str:
    """Start `runwatch serve`, ask /readyz a few times, stop it; its whole log."""
    import signal
    import time

    import httpx

    port = free_port()
    log_path = tmp_path / "serve.log"
    command = [sys.executable, "-m", "runwatch", "--database-url", sqlite_url(tmp_path / "s.db")]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "serve", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env
        )
    try:
        ready = 0
        deadline = time.monotonic() + 90
        while ready < 3 and time.monotonic() < deadline and process.poll() is None:
            try:
                ready += httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                time.sleep(0.2)
        assert ready == 3, log_path.read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    return log_path.read_text()


def test_serve_migrates_and_warns_once_and_readyz_is_quiet(tmp_path: Path) -> None:
    log = _serve_and_poll(tmp_path, clean_env())
    assert "alembic" not in log
    assert log.count("no API keys") == 1, log
    assert log.count("database migrated") == 1, log
    assert log.count("GET /readyz 200") == 3, log
    assert "Traceback" not in log


def test_json_logs_carry_no_terminal_colours(tmp_path: Path) -> None:
    import json

    log = _serve_and_poll(tmp_path, clean_env(RUNWATCH_LOG_FORMAT="json"))
    # The migration line is the command's own report, not a log record.
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert len(records) >= 5
    assert any(r["logger"].startswith("uvicorn") for r in records)
    for record in records:
        assert "color_message" not in record
        assert "\x1b" not in json.dumps(record, ensure_ascii=False)
    others = [line for line in log.splitlines() if not line.startswith("{")]
    assert others == [f"runwatch: database migrated from base to {HEAD}"]


def test_long_commands_show_progress_on_a_terminal(tmp_path: Path) -> None:
    import fcntl
    import pty
    import struct
    import termios

    main, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    url = sqlite_url(tmp_path / "p.db")
    process = subprocess.Popen(
        [sys.executable, "-m", "runwatch", "--database-url", url, "demo-data", "--runs", "12000"],
        stdout=subprocess.DEVNULL,
        stderr=terminal,
        env=clean_env(),
    )
    os.close(terminal)
    seen = b""
    try:
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the command closed the terminal: everything was read
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(main)
        assert process.wait(timeout=300) == 0
    text = seen.decode(errors="replace")
    # A bar that counts the runs inserted, in chunks of 5,000, and the summary after it.
    assert "demo data:" in text
    assert "/12.0k" in text
    assert "runwatch: inserted 12000 demo layer runs" in text
