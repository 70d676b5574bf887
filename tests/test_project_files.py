"""The README, compose file and settings agree with each other."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from runwatch.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [n for n in Settings.model_fields if f"RUNWATCH_{n.upper()}" not in readme]
    assert missing == []


def test_compose_uses_only_real_settings_and_migrates_first() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    known = {f"RUNWATCH_{n.upper()}" for n in Settings.model_fields}
    for name, service in services.items():
        for variable in service.get("environment", {}):
            if variable.startswith("RUNWATCH_"):
                assert variable in known, (name, variable)
    assert services["migrate"]["command"] == ["runwatch", "migrate"]
    assert services["api"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["api"]["deploy"]["replicas"] == 2
    assert "standby" in services
    for mounted in ("deploy/nginx.conf", "deploy/primary-init.sh", "deploy/standby-entrypoint.sh"):
        assert (ROOT / mounted).is_file(), mounted


def test_dockerfile_runs_as_non_root_with_a_healthcheck() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users
    assert users[-1] not in ("root", "0")
    assert any(line.startswith("HEALTHCHECK") for line in lines)
    assert "/healthz" in (ROOT / "Dockerfile").read_text()


def test_compose_is_secure_by_default(tmp_path: Path) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert services["api"]["environment"]["RUNWATCH_INSECURE"] == "${RUNWATCH_INSECURE:-false}"
    for service in services.values():
        for published in service.get("ports", []):
            assert str(published).startswith("${RUNWATCH_PUBLISH_ADDRESS:-127.0.0.1}:"), published
    assert services["api"]["depends_on"]["keys"]["condition"] == "service_completed_successfully"
    assert services["keys"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )

    # The keys service's script, run against a real database: the first start
    # creates a key that opens the API, the next ones create none.
    script = services["keys"]["command"][0].replace("/home/runwatch/keys", str(tmp_path))
    database = f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "RUNWATCH_DATABASE_URL": database,
    }
    subprocess.run([sys.executable, "-m", "runwatch", "migrate"], env=env, check=True)
    first = subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "created a write key" in first.stdout
    token = (tmp_path / "write.key").read_text().strip()
    assert token.startswith("rw_")
    assert (tmp_path / "write.key").stat().st_mode & 0o077 == 0
    again = subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True)
    assert "the write key is in the keys volume" in again.stdout
    (tmp_path / "write.key").unlink()
    elsewhere = subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True)
    assert "keys exist already" in elsewhere.stdout
    assert not (tmp_path / "write.key").exists()
    listed = subprocess.run(
        [sys.executable, "-m", "runwatch", "keys", "list"], env=env, capture_output=True, text=True
    )
    assert len(listed.stdout.strip().splitlines()) == 2  # the header and one key
    assert token[:9] in listed.stdout


def test_the_wheel_holds_no_test_helpers_and_runs_without_test_tools(tmp_path: Path) -> None:
    import zipfile

    from hatchling.builders.wheel import WheelBuilder

    wheel = next(
        iter(WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"]))
    )
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        requires = [
            line.removeprefix("Requires-Dist: ")
            for line in archive.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist: ")
        ]
    assert "runwatch/cli/__init__.py" in names
    assert [n for n in names if n.startswith("runwatch/testing")] == []
    runtime = [r for r in requires if "extra ==" not in r]
    assert any(r.startswith("fastapi") for r in runtime)
    for tool in ("pytest", "playwright", "schemathesis", "hypothesis", "ruff", "watchfiles"):
        assert not any(r.startswith(tool) for r in runtime), tool
    assert not any("[standard]" in r for r in runtime)


def test_demo_installs_without_the_test_extras_and_test_with_them() -> None:
    demo = (ROOT / "scripts" / "demo").read_text()
    test = (ROOT / "scripts" / "test").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'source "$(dirname "$0")/_env.sh" ""' in demo
    assert 'source "$(dirname "$0")/_env.sh" test' in test
    assert "source scripts/_env.sh test" in ci
