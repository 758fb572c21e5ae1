#!/usr/bin/env bash
# The quickstart 30 times, its sleep 20% longer from run 20 on (`--var
# nap=2.4ms` instead of the scenario's 2ms), imported into a fresh history;
# then what `history show`, `history check` and `history report` make of it.
#
#   examples/history/run.sh [SCRATCH_DIR]
#
# Builds the release binary (in CARGO_TARGET_DIR, else target/), writes the
# 30 run folders and history.sqlite under SCRATCH_DIR (default: a new
# temporary folder; it must not hold a history already), and writes
# history-show.txt, history-check.txt and history.html beside this script.
# About six minutes of runs on a 2-vCPU VM, after the build.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
scratch="${1:-$(mktemp -d)}"
runs="$scratch/runs"
db="$scratch/history.sqlite"
[[ ! -e "$db" ]] || { echo "$db exists: give a fresh SCRATCH_DIR" >&2; exit 2; }
mkdir -p "$runs"

cargo build --release --locked --manifest-path "$repo/Cargo.toml"
phasebench="${CARGO_TARGET_DIR:-$repo/target}/release/phasebench"

folders=()
for i in $(seq 1 30); do
  name="$(printf 'quickstart-%02d' "$i")"
  slower=()
  if (( i >= 20 )); then slower=(--var nap=2.4ms); fi
  status=0
  "$phasebench" run "$repo/scenarios/quickstart.yaml" --out "$runs/$name" --quiet --no-history "${slower[@]}" \
    >"$runs/$name.log" 2>&1 || status=$?
  # 1 is expected from run 20 on: the slower sleep misses `latency.p50 < 2.2ms`.
  if (( status > 1 )); then cat "$runs/$name.log" >&2; exit "$status"; fi
  echo "run $i ${slower[*]:-(nap as in the scenario)}: exit $status"
  folders+=("$runs/$name")
done

"$phasebench" history import --history "$db" "${folders[@]}"
"$phasebench" history show --history "$db" --run sleep >"$here/history-show.txt"
# As CI would run it (a regression starting in the newest 5 campaigns
# fails), over the 11 campaigns since the slowdown, and over the newest 23.
check() {
  echo "\$ phasebench history check${*:+ $*}"
  local status=0
  "$phasebench" history check --history "$db" "$@" || status=$?
  echo "(exit status $status)"
}
{ check; echo; check --newest 11; echo; check --newest 23; } >"$here/history-check.txt"
"$phasebench" history report --history "$db" --out "$here/history.html"
echo "runs and history in $scratch"
