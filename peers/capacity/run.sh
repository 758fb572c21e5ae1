#!/usr/bin/env bash
# The capacity search's known answer in real time: `calibrate sleep 1ms`
# behind 4 in-flight slots, a p99 of 3 ms, 20 seeded searches of
# 1,000–16,000/s (tests/capacity_search.rs, the_capacity_of_a_known_queue_is_found).
# Real sleeps measure the machine as well as the search, so this is a
# benchmark: run it alone on an otherwise idle machine, in release. The
# output goes to results-<utc date>/known-answer.txt with the machine it
# came from; tests/capacity_search.rs recounts every committed copy.
#
# Environment (optional): RESULTS_DIR=DIR (default: results-<utc date>/).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${RESULTS_DIR:-$here/results-$(date -u +%Y%m%d)}"
mkdir -p "$out"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

(cd "$repo" && cargo test --release --locked --test capacity_search --no-run --quiet)
started="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
status=0
(cd "$repo" && cargo test --release --locked --test capacity_search --quiet -- \
  --ignored --exact the_capacity_of_a_known_queue_is_found --nocapture) >"$log" 2>&1 || status=$?

{
  echo "utc: $started"
  echo "host: $(uname -srm)"
  lscpu 2>/dev/null | grep -E '^(Model name|CPU\(s\)|Hypervisor vendor)' || true
  grep -E '^MemTotal' /proc/meminfo || true
  echo "rustc: $(rustc --version)"
  echo "commit: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "test exit status: $status"
  echo
  grep -E '^(seed [0-9]+:|[0-9]+ of 20 searches)' "$log" | sort -u -t: -k1,1 -V
} >"$out/known-answer.txt"
cat "$out/known-answer.txt"
if [[ "$status" != 0 ]]; then
  echo "the test failed; its output:" >&2
  cat "$log" >&2
fi
exit "$status"
