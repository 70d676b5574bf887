# Shared by scripts/test and scripts/demo: make ./.venv with runwatch installed.
# `source scripts/_env.sh` installs what runwatch needs to run; `source
# scripts/_env.sh test` adds the test extras (pytest, Playwright, ruff, …).
# Reinstalls only when pyproject.toml, constraints.txt or the extras changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
EXTRAS="${1:-}"
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "runwatch needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=".venv/.runwatch-installed"
fingerprint() { { cat pyproject.toml constraints.txt; echo "extras=$1"; } | sha256sum | cut -d' ' -f1; }
have="$(cat "$stamp" 2>/dev/null || true)"
# A venv with the test extras also serves the demo.
if [ "$have" != "$(fingerprint "$EXTRAS")" ] && { [ -n "$EXTRAS" ] || [ "$have" != "$(fingerprint test)" ]; }; then
    target="."
    [ -n "$EXTRAS" ] && target=".[$EXTRAS]"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -c constraints.txt -e "$target"
    fingerprint "$EXTRAS" > "$stamp"
fi
