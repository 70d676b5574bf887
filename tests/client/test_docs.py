"""Every example in docs/client.md, run in order against a live server on both dialects."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.client.conftest import LiveServer

DOC = Path(__file__).resolve().parents[2] / "docs" / "client.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def examples() -> list[tuple[int, str]]:
    text = DOC.read_text()
    return [(text[: m.start()].count("\n") + 1, m.group(1)) for m in BLOCK.finditer(text)]


def test_the_doc_has_sync_and_async_examples() -> None:
    code = "\n".join(block for _, block in examples())
    assert "RunwatchClient()" in code
    assert "AsyncRunwatchClient()" in code
    assert len(examples()) >= 8


def test_docs_examples_run(live_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNWATCH_URL", live_server.url)
    monkeypatch.delenv("RUNWATCH_API_KEY", raising=False)
    namespace: dict[str, object] = {"__name__": "docs_client"}
    for line, block in examples():
        exec(compile(block, f"{DOC}:{line}", "exec"), namespace)
