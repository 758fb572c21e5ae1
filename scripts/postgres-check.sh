#!/usr/bin/env bash
# The history on a real PostgreSQL: tests/history_postgres.rs against a
# server this script starts on loopback, then stops.
#
#   scripts/postgres-check.sh          # CI runs it (.ci/run); root or not
#
# 1. installs Debian's postgresql (apt-get, as root) when no initdb is found;
# 2. makes a throwaway cluster under $PHASEBENCH_PG_STATE (/tmp/phasebench-pg),
#    trust authentication for the role `phasebench`, listening on 127.0.0.1
#    at $PHASEBENCH_PG_PORT (54329) only; as root the server runs as the
#    `postgres` user, which refuses to run as root;
# 3. runs the ignored tests of tests/history_postgres.rs with
#    PHASEBENCH_TEST_POSTGRES pointing at it (each test makes its own database);
# 4. stops the server and removes the cluster, also on failure, printing its log.
set -euo pipefail
cd "$(dirname "$0")/.."

state=${PHASEBENCH_PG_STATE:-/tmp/phasebench-pg}
port=${PHASEBENCH_PG_PORT:-54329}
say() { echo "== postgres-check: $*"; }

find_bin() {
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    [ -n "$found" ] && [ -x "$found/initdb" ] && echo "$found"
}

bin=$(find_bin || true)
if [ -z "$bin" ]; then
    if [ "$(id -u)" != 0 ]; then
        say "no PostgreSQL server installed, and installing one needs root"; exit 1
    fi
    say "installing postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    bin=$(find_bin)
fi
say "server binaries in $bin"

# As root, the server runs as `postgres`.
as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

stop_server() {
    if [ -f "$state/data/postmaster.pid" ]; then
        as_owner "$bin/pg_ctl" -D "$state/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
}

stop_server
rm -rf "$state"
mkdir -p "$state"
[ "$(id -u)" = 0 ] && chown postgres "$state"
cleanup() {
    local status=$?
    stop_server
    if [ $status -ne 0 ] && [ -f "$state/server.log" ]; then
        echo "---- server log (last 40 lines)"; tail -n 40 "$state/server.log"
    fi
    rm -rf "$state"
}
trap cleanup EXIT

as_owner "$bin/initdb" -D "$state/data" -U phasebench --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
as_owner "$bin/pg_ctl" -D "$state/data" -l "$state/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $state -c fsync=on" start >/dev/null
say "server on 127.0.0.1:$port"

export PHASEBENCH_TEST_POSTGRES="postgres://phasebench@127.0.0.1:$port"
cargo test --locked --test history_postgres -- --ignored
say "ok"
