#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs (Debian packages, Python
# packages, test-only npm packages), then lints, type-checks and runs pytest.
# Usage: bash scripts/test.sh [extra pytest args]     (long soak/fuzz tests: add -m slow)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
# A CJK font, so Chinese pages render in browser screenshots (not needed for assertions).
fc-list 2>/dev/null | grep -qi "wenquanyi\|noto sans cjk" || need_apt+=(fonts-wqy-zenhei)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -e ".[test]"
for lock in tests/*/axe/package-lock.json tests/web/axe/package-lock.json; do
  [ -f "$lock" ] || continue
  d=$(dirname "$lock"); [ -d "$d/node_modules" ] || (cd "$d" && npm ci --ignore-scripts --no-audit --no-fund -q)
done

python3 -m ruff check src tests
python3 -m mypy src
python3 -m pytest -q -p no:cacheprovider "$@"
