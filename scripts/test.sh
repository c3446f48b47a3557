#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs (Debian packages, Python
# packages, test-only npm packages), then lints, type-checks and runs pytest.
# Usage: bash scripts/test.sh [extra pytest args]     (long soak/fuzz tests: add -m slow)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
# The MQTT broker for the Smart Village sensor tests (started by the tests on 127.0.0.1).
[ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null 2>&1 || need_apt+=(mosquitto)
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

# Throwaway PostgreSQL (+ pg_partman) and Redis for the scale-out half of the suite: the store
# tests run on DuckDB and PostgreSQL alike. They are mandatory here (no silent skip).
services_env=$(mktemp)
trap 'bash scripts/services.sh stop "$services_env"' EXIT
bash scripts/services.sh start "$services_env"
# shellcheck disable=SC1090
source "$services_env"
export CITYPULSE_REQUIRE_SERVICES=1

python3 -m pytest -q -p no:cacheprovider "$@"
