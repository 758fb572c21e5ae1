#!/usr/bin/env bash
# `run --metrics-addr` scraped by a real Prometheus: tests/metrics_prometheus.rs
# against a server this script starts on loopback, then stops.
#
#   scripts/prometheus-check.sh        # CI runs it (.ci/run); root or not
#
# 1. installs Debian's prometheus (apt-get, as root) when none is found;
# 2. starts it on 127.0.0.1:$PHASEBENCH_PROM_PORT (19090) with its storage
#    under $PHASEBENCH_PROM_STATE (/tmp/phasebench-prometheus), scraping
#    127.0.0.1:$PHASEBENCH_SCRAPE_PORT (19464) every second;
# 3. runs the ignored test of tests/metrics_prometheus.rs, which runs a
#    campaign with --metrics-addr on that port and queries Prometheus;
# 4. stops Prometheus and removes its storage, also on failure, printing its log.
set -euo pipefail
cd "$(dirname "$0")/.."

state=${PHASEBENCH_PROM_STATE:-/tmp/phasebench-prometheus}
port=${PHASEBENCH_PROM_PORT:-19090}
target=${PHASEBENCH_SCRAPE_PORT:-19464}
say() { echo "== prometheus-check: $*"; }

bin=$(command -v prometheus || true)
if [ -z "$bin" ]; then
    if [ "$(id -u)" != 0 ]; then
        say "no prometheus installed, and installing it needs root"; exit 1
    fi
    say "installing prometheus"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    bin=$(command -v prometheus)
fi
say "$("$bin" --version 2>&1 | head -n 1)"
# The package's own service, if the install started one, is left alone: this
# one has its own port and storage.

rm -rf "$state"
mkdir -p "$state"
cat >"$state/prometheus.yml" <<CONFIG
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: phasebench
    static_configs:
      - targets: ["127.0.0.1:$target"]
CONFIG

"$bin" --config.file="$state/prometheus.yml" --storage.tsdb.path="$state/data" \
    --web.listen-address="127.0.0.1:$port" >"$state/prometheus.log" 2>&1 &
pid=$!
cleanup() {
    local status=$?
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if [ $status -ne 0 ]; then
        echo "---- prometheus log (last 40 lines)"; tail -n 40 "$state/prometheus.log" || true
    fi
    rm -rf "$state"
}
trap cleanup EXIT

for _ in $(seq 1 60); do
    if curl -fsS "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1; then break; fi
    kill -0 "$pid" 2>/dev/null || { say "prometheus exited"; exit 1; }
    sleep 0.5
done
curl -fsS "http://127.0.0.1:$port/-/ready" >/dev/null
say "prometheus on 127.0.0.1:$port, scraping 127.0.0.1:$target every second"

export PHASEBENCH_TEST_PROMETHEUS="http://127.0.0.1:$port" PHASEBENCH_TEST_SCRAPE_ADDR="127.0.0.1:$target"
cargo test --locked --test metrics_prometheus -- --ignored --nocapture
say "ok"
