"""Key primitives (hashing, scopes, bearer parsing, loopback) and `runwatch keys …` on the CLI."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from runwatch.cli import main
from runwatch.security import (
    KeySet,
    bearer_token,
    hash_token,
    is_loopback,
    new_token,
    scope_allows,
    scope_for_method,
)


def test_tokens_are_random_and_hashed_with_sha256() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    token = tokens.pop()
    assert token.startswith("rw_")
    assert len(token) >= 40
    assert hash_token(token) == hashlib.sha256(token.encode()).hexdigest()


@pytest.mark.parametrize(
    ("granted", "needed", "allowed"),
    [
        ("read", "read", True),
        ("read", "write", False),
        ("read", "admin", False),
        ("write", "read", True),
        ("write", "write", True),
        ("write", "admin", False),
        ("admin", "read", True),
        ("admin", "write", True),
        ("admin", "admin", True),
    ],
)
def test_scope_order(granted: str, needed: str, allowed: bool) -> None:
    assert scope_allows(granted, needed) is allowed


def test_methods_map_to_scopes() -> None:
    assert [scope_for_method(m) for m in ("GET", "HEAD", "OPTIONS")] == ["read"] * 3
    assert [scope_for_method(m) for m in ("POST", "PATCH", "PUT", "DELETE")] == ["write"] * 4


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer   abc  ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("", None),
        (None, None),
        ("Bearer " + "a" * 513, None),
    ],
)
def test_bearer_parsing(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.0.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("example.com", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_key_set_finds_only_the_exact_token() -> None:
    from runwatch.security import ActiveKey

    token = new_token()
    key = ActiveKey(id="k1", name="n", scope="read", token_hash=hash_token(token))
    keys = KeySet(by_hash={key.token_hash: key}, any_created=True)
    assert keys.find(token) == key
    assert keys.find(token[:-1]) is None
    assert keys.find(token + "x") is None


def run_cli(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    code = main(["--database-url", url, *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_keys_create_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"
    code, out, err = run_cli(capsys, url, "keys", "create", "--name", "ci", "--scope", "write")
    assert code == 0
    token = out.strip()
    assert token.startswith("rw_")
    assert "only once" in err

    code, listing, _ = run_cli(capsys, url, "keys", "list")
    assert code == 0
    assert "ci" in listing
    assert "write" in listing
    assert token[:9] in listing
    assert token not in listing

    assert run_cli(capsys, url, "keys", "revoke", "ci")[0] == 0
    code, _, err = run_cli(capsys, url, "keys", "revoke", "ci")
    assert code == 1
    assert "No active API key" in err
    assert main(["--database-url", url, "keys", "list"]) == 0
    revoked_line = next(
        line for line in capsys.readouterr().out.splitlines() if line.split()[1:2] == ["ci"]
    )
    assert revoked_line.split()[-1] != "-"


def test_keys_create_rejects_an_unknown_scope(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"
    with pytest.raises(SystemExit):
        main(["--database-url", url, "keys", "create", "--name", "x", "--scope", "root"])


def test_serve_refuses_a_public_bind_without_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}"
    code, _, err = run_cli(capsys, url, "serve", "--host", "0.0.0.0", "--port", "1")
    assert code == 2
    assert "runwatch keys create" in err
    assert "--insecure" in err


async def test_key_cache_reloads_once_for_concurrent_requests() -> None:
    import asyncio

    from runwatch.security import KeyCache

    loads = 0

    async def load() -> KeySet:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.01)
        return KeySet(by_hash={}, any_created=False)

    cache = KeyCache(load, ttl_seconds=3600)
    results = await asyncio.gather(*(cache.get() for _ in range(10)))
    assert loads == 1
    assert all(result is results[0] for result in results)
    cache.invalidate()
    await cache.get()
    assert loads == 2
