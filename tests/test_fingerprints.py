"""The fingerprint rules: what is replaced, what is kept, and which errors group together."""

from __future__ import annotations

import re

import pytest

from runwatch.fingerprints import run_signatures, signature, template


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Timeout after 30s on ticket-123", "Timeout after <num>s on ticket-<num>"),
        ("Prompt of 212,431 tokens exceeds 200000", "Prompt of <num> tokens exceeds <num>"),
        ("latency 3.25 ms, version 1.2.3", "latency <num> ms, version <num>"),
        ("user 550e8400-e29b-41d4-a716-446655440000 missing", "user <uuid> missing"),
        ("request 9f86d081884c7d65 at 0x7ffe12 failed", "request <hex> at <hex> failed"),
        ("no field 'evidence' in \"insight\" or `x`", "no field <str> in <str> or <str>"),
        ("model gpt4 and v2 and req_42", "model gpt4 and v2 and req_<num>"),
        ("  spaced \t out\nmessage  ", "spaced out message"),
        ("deadbeef is a word but cafe12 is short", "deadbeef is a word but cafe12 is short"),
        ("", ""),
    ],
)
def test_template_rules(message: str, expected: str) -> None:
    assert template(message) == expected


def test_same_failure_with_other_numbers_and_ids_is_one_group() -> None:
    a = signature({"type": "TimeoutError", "message": "Timeout after 30s on ticket-123"})
    b = signature({"type": "TimeoutError", "message": "Timeout after 31s on ticket-456"})
    other_type = signature({"type": "ProviderError", "message": "Timeout after 30s on ticket-1"})
    other_text = signature({"type": "TimeoutError", "message": "Timed out after 30s"})
    assert a.fingerprint == b.fingerprint
    assert re.fullmatch(r"[0-9a-f]{16}", a.fingerprint)
    assert a.template == "Timeout after <num>s on ticket-<num>"
    assert a.message == "Timeout after 30s on ticket-123"
    assert len({a.fingerprint, other_type.fingerprint, other_text.fingerprint}) == 3


def test_type_and_message_fallbacks() -> None:
    assert signature({"code": "E42", "error": "boom 7"}).type == "E42"
    assert signature({"code": "E42", "error": "boom 7"}).template == "boom <num>"
    assert signature({"detail": "x"}).type == ""
    assert signature({"message": 5}).template == ""
    assert signature("plain text 12").template == "plain text <num>"


def test_run_signatures_count_errors_per_group() -> None:
    errors = [
        {"type": "T", "message": "a 1"},
        {"type": "T", "message": "a 2"},
        {"type": "T", "message": "b"},
    ]
    found = run_signatures(errors)
    assert sorted(count for _, count in found.values()) == [1, 2]
    assert run_signatures(None) == {}
