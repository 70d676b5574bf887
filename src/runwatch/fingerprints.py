"""Error fingerprints: an error's type plus its message with the variable parts replaced.

The rules, applied to the message in this order:

1. quoted text (`'…'`, `"…"` or `` `…` ``, on one line) becomes `<str>`;
2. UUIDs (8-4-4-4-12 hex digits) become `<uuid>`;
3. `0x` hex numbers, and runs of 8 or more hex digits with at least one digit
   and one letter a-f (commit hashes, request ids), become `<hex>`;
4. numbers (digits, and further groups of digits joined by `.` or `,`, as in
   `3.5`, `212,431` or `1.2.3`) that do not follow a letter or digit become
   `<num>` (`ticket-123`, `30s`, `req_42` do; `gpt4`, `v2` do not);
5. runs of whitespace become one space, and the ends are trimmed.

The type is the error object's `type` (else `code`, else empty); the message is
its `message` (else `error`, else `detail`, else empty). The fingerprint is the
first 16 hex digits of the SHA-256 of `type`, a unit separator and the template,
so "Timeout after 30s on ticket-123" and "Timeout after 31s on ticket-456" of
the same type are one group.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_TEMPLATE_CHARS = 500
MAX_TYPE_CHARS = 200
MAX_SAMPLE_CHARS = 1000

_QUOTED = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"|`[^`\n]*`")
_UUID = re.compile(
    r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
)
_HEX = re.compile(
    r"\b0[xX][0-9a-fA-F]+\b"
    r"|\b(?=[0-9a-fA-F]*[0-9])(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"
)
_NUMBER = re.compile(r"(?<![A-Za-z0-9])\d+(?:[.,]\d+)*")
_SPACE = re.compile(r"\s+")


def template(message: str) -> str:
    """The message with its variable parts replaced (the rules in this module's docstring)."""
    text = _QUOTED.sub("<str>", message)
    text = _UUID.sub("<uuid>", text)
    text = _HEX.sub("<hex>", text)
    text = _NUMBER.sub("<num>", text)
    return _SPACE.sub(" ", text).strip()[:MAX_TEMPLATE_CHARS]


def _text(error: Mapping[str, Any], *keys: str) -> str:
    for key in keys:
        value = error.get(key)
        if isinstance(value, str):
            return value
    return ""


@dataclass(frozen=True)
class ErrorSignature:
    """One error of a run: its group's fingerprint, type and template, and its own message."""

    fingerprint: str
    type: str
    template: str
    message: str


def signature(error: Any) -> ErrorSignature:
    """The fingerprint and parts of one error object (a non-object counts as its text)."""
    if isinstance(error, Mapping):
        kind = _text(error, "type", "code")[:MAX_TYPE_CHARS]
        message = _text(error, "message", "error", "detail")
    else:
        kind, message = "", str(error)
    shape = template(message)
    digest = hashlib.sha256(f"{kind}\x1f{shape}".encode()).hexdigest()[:16]
    return ErrorSignature(digest, kind, shape, message[:MAX_SAMPLE_CHARS])


def run_signatures(errors: Iterable[Any] | None) -> dict[str, tuple[ErrorSignature, int]]:
    """Per fingerprint, one signature (the first seen) and how many of the run's errors have it."""
    out: dict[str, tuple[ErrorSignature, int]] = {}
    for error in errors or ():
        sig = signature(error)
        first, count = out.get(sig.fingerprint, (sig, 0))
        out[sig.fingerprint] = (first, count + 1)
    return out
