#!/usr/bin/env bash
# Throwaway PostgreSQL 15 (+ pg_partman) and Redis servers for the scale-out tests.
#
#   bash scripts/services.sh start ENV_FILE   # start both, write `export CITYPULSE_TEST_*=...`
#   bash scripts/services.sh stop ENV_FILE    # stop both and delete their data
#   bash scripts/services.sh install          # apt-get the Debian packages when missing
#
# Environment: PG_DURABLE=1 keeps fsync on (benchmarks), PG_SHARED_BUFFERS=1GB sizes the cache.
#
# Both listen on 127.0.0.1 at free ports with their data in a temp dir, so several test runs
# on one machine never collide and nothing outlives `stop`. PostgreSQL refuses to run as root:
# as root the cluster belongs to the `postgres` system user (runuser), else to the caller.
# The cluster runs with fsync off (it is disposable; a killed server still keeps every
# acknowledged commit, which the restart test relies on, because commits stay synchronous).
set -euo pipefail

action=${1:-}
env_file=${2:-}

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

install_packages() {
  local need=()
  [ -x "$PG_BIN/initdb" ] || need+=(postgresql-15)
  [ -f /usr/share/postgresql/15/extension/pg_partman.control ] || need+=(postgresql-15-partman)
  command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
  if [ ${#need[@]} -gt 0 ]; then
    local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  [ -n "$env_file" ] || { echo "usage: $0 start ENV_FILE" >&2; exit 2; }
  install_packages
  local dir; dir=$(mktemp -d "${TMPDIR:-/tmp}/citypulse-services.XXXXXX")
  chmod 755 "$dir"
  local pgdata="$dir/pg" pg_port redis_port runas=""
  mkdir -p "$pgdata"
  if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$pgdata"; runas=postgres; fi
  chmod 700 "$pgdata"
  pg_port=$(free_port)
  as_owner "$PG_BIN/initdb" -D "$pgdata" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  cat >>"$pgdata/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$pgdata'
max_connections = 200
shared_buffers = ${PG_SHARED_BUFFERS:-128MB}
timezone = 'UTC'
EOF
  # Benchmarks set PG_DURABLE=1: a production-like cluster that fsyncs.
  if [ "${PG_DURABLE:-0}" != "1" ]; then
    printf "fsync = off\nfull_page_writes = off\n" >>"$pgdata/postgresql.conf"
  fi
  as_owner "$PG_BIN/pg_ctl" -D "$pgdata" -l "$pgdata/server.log" -w -t 60 start >/dev/null \
    || { cat "$pgdata/server.log" >&2; exit 1; }
  "$PG_BIN/psql" -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -c "CREATE DATABASE citypulse_test" >/dev/null

  redis_port=$(free_port)
  redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir"
  for _ in $(seq 50); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done

  cat >"$env_file" <<EOF
export CITYPULSE_SERVICES_DIR='$dir'
export CITYPULSE_TEST_PG_URL='postgresql://postgres@127.0.0.1:$pg_port/citypulse_test'
export CITYPULSE_TEST_PG_ADMIN_URL='postgresql://postgres@127.0.0.1:$pg_port/postgres'
export CITYPULSE_TEST_PG_DATA='$pgdata'
export CITYPULSE_TEST_PG_BIN='$PG_BIN'
export CITYPULSE_TEST_PG_RUNAS='$runas'
export CITYPULSE_TEST_REDIS_URL='redis://127.0.0.1:$redis_port/0'
export CITYPULSE_TEST_REDIS_PORT='$redis_port'
EOF
  echo "services: PostgreSQL on 127.0.0.1:$pg_port, Redis on 127.0.0.1:$redis_port ($dir)"
}

stop() {
  [ -n "$env_file" ] && [ -f "$env_file" ] || return 0
  # shellcheck disable=SC1090
  source "$env_file"
  if [ -n "${CITYPULSE_TEST_PG_DATA:-}" ] && [ -f "$CITYPULSE_TEST_PG_DATA/postmaster.pid" ]; then
    as_owner "$CITYPULSE_TEST_PG_BIN/pg_ctl" -D "$CITYPULSE_TEST_PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  if [ -n "${CITYPULSE_SERVICES_DIR:-}" ] && [ -f "$CITYPULSE_SERVICES_DIR/redis.pid" ]; then
    kill "$(cat "$CITYPULSE_SERVICES_DIR/redis.pid")" 2>/dev/null || true
  fi
  case "${CITYPULSE_SERVICES_DIR:-}" in
    */citypulse-services.*) rm -rf "$CITYPULSE_SERVICES_DIR" ;;
  esac
  rm -f "$env_file"
}

case "$action" in
  start) start ;;
  stop) stop ;;
  install) install_packages ;;
  *) echo "usage: $0 start|stop ENV_FILE | install" >&2; exit 2 ;;
esac
