#!/usr/bin/env bash
# Run the vault peer benchmark: redb and sled on YCSB A/B/C (durability none)
# and A (durable), then on W (durable writes from 1, 8, 32 writer threads),
# plus every executable in peers.d/, and print markdown tables.
#
# Environment (all optional):
#   KEYS=100000 VALUE_SIZE=1024 SEED=42
#   OPS=N                 sets all four YCSB op counts below at once
#   OPS_A=50000 OPS_B=200000 OPS_C=200000 OPS_A_DURABLE=20000
#   WRITERS="1 8 32"      writer thread counts of workload W
#   OPS_W=20000           measured writes of W per run, split over the writers
#   ONLY=ycsb|writers     run only that part (default: both)
#   VAULT_BENCH_DIR=/tmp/vault-bench   scratch space for the databases
#   CARGO_TARGET_DIR=/work/bench-target  CARGO_BUILD_JOBS=1
#   BUILTIN=0             skip redb/sled (run peers.d/ only)
#   PEERS=0               skip peers.d/
#   REPEAT=1              run the whole set this many times (interleaved);
#                         make_table.py reports the median of each number
#   RESULTS_DIR=DIR       write results there instead of results/<utc time>/
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

export KEYS="${KEYS:-100000}"
export VALUE_SIZE="${VALUE_SIZE:-1024}"
export SEED="${SEED:-42}"
export OPS_A="${OPS_A:-${OPS:-50000}}"
export OPS_B="${OPS_B:-${OPS:-200000}}"
export OPS_C="${OPS_C:-${OPS:-200000}}"
export OPS_A_DURABLE="${OPS_A_DURABLE:-${OPS:-20000}}"
export WRITERS="${WRITERS:-1 8 32}"
export OPS_W="${OPS_W:-20000}"
ONLY="${ONLY:-}"
case "$ONLY" in
  "" | all) parts="ycsb writers" ;;
  ycsb | writers) parts="$ONLY" ;;
  *) echo "run_peers.sh: ONLY must be ycsb or writers, not '$ONLY'" >&2; exit 2 ;;
esac
for w in $WRITERS; do
  [[ "$w" =~ ^[1-9][0-9]*$ ]] || { echo "run_peers.sh: WRITERS must be positive whole numbers, not '$w'" >&2; exit 2; }
done
# What peers.d/ executables are asked to run ("ycsb", "writers" or both).
export VAULT_PEER_PARTS="$parts"
has_part() { [[ " $parts " == *" $1 "* ]]; }
export VAULT_BENCH_DIR="${VAULT_BENCH_DIR:-/tmp/vault-bench}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/bench-target}"
BUILTIN="${BUILTIN:-1}"
REPEAT="${REPEAT:-1}"
PEERS="${PEERS:-1}"

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="${RESULTS_DIR:-$here/results/$stamp}"
mkdir -p "$out" "$VAULT_BENCH_DIR"
jsonl="$out/results.jsonl"
log="$out/stderr.log"
: >"$jsonl"
: >"$log"

# ---- machine and parameters, for the record
{
  echo "utc: $stamp"
  echo "host: $(uname -srm)"
  lscpu 2>/dev/null | grep -E '^(Model name|CPU\(s\)|Thread\(s\) per core|Core\(s\) per socket|Hypervisor vendor)' || true
  grep -E '^(MemTotal)' /proc/meminfo 2>/dev/null || true
  echo "scratch: $VAULT_BENCH_DIR ($(df -hT "$VAULT_BENCH_DIR" 2>/dev/null | awk 'NR==2{print $2", "$1}'))"
  echo "KEYS=$KEYS VALUE_SIZE=$VALUE_SIZE SEED=$SEED OPS_A=$OPS_A OPS_B=$OPS_B OPS_C=$OPS_C OPS_A_DURABLE=$OPS_A_DURABLE REPEAT=$REPEAT"
  echo "WRITERS=\"$WRITERS\" OPS_W=$OPS_W parts: $parts"
  echo "rustc: $(rustc --version 2>/dev/null || echo '?')"
  awk '/^name = "(redb|sled|hdrhistogram)"$/{n=$3; getline; print "crate: " n " " $3}' peer/Cargo.lock | tr -d '"'
} >"$out/machine.txt"

# fresh scratch directory per run, removed afterwards
fresh_dir() { mktemp -d "$VAULT_BENCH_DIR/run.XXXXXX"; }

# keep only JSON-object lines of a run's stdout
collect() { grep -E '^[[:space:]]*\{' || true; }

if [[ "$BUILTIN" != 0 ]]; then
  echo ">> building vault-peer (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)" >&2
  cargo build --release --locked -j "${CARGO_BUILD_JOBS:-1}" \
    --manifest-path "$here/peer/Cargo.toml" 1>&2
  bin="$CARGO_TARGET_DIR/release/vault-peer"
fi

runs=(
  "A none $OPS_A"
  "B none $OPS_B"
  "C none $OPS_C"
  "A durable $OPS_A_DURABLE"
)

for ((rep = 1; rep <= REPEAT; rep++)); do
  export REPEAT_INDEX="$rep"

  if [[ "$BUILTIN" != 0 ]] && has_part ycsb; then
    for r in "${runs[@]}"; do
      read -r wl dur ops <<<"$r"
      for store in redb sled; do
        d="$(fresh_dir)"
        echo ">> [$rep/$REPEAT] $store workload $wl durability $dur ops $ops" >&2
        if "$bin" --store "$store" --workload "$wl" --durability "$dur" \
            --keys "$KEYS" --value-size "$VALUE_SIZE" --ops "$ops" --seed "$SEED" \
            --dir "$d" 2>>"$log" | collect | tee -a "$jsonl"; then :; else
          echo "!! $store $wl $dur failed (see $log)" >&2
        fi
        rm -rf "$d"
      done
    done
  fi

  if [[ "$BUILTIN" != 0 ]] && has_part writers; then
    for w in $WRITERS; do
      for store in redb sled; do
        d="$(fresh_dir)"
        echo ">> [$rep/$REPEAT] $store workload W writers $w ops $OPS_W" >&2
        if "$bin" --store "$store" --workload W --durability durable --writers "$w" \
            --keys "$KEYS" --value-size "$VALUE_SIZE" --ops "$OPS_W" --seed "$SEED" \
            --dir "$d" 2>>"$log" | collect | tee -a "$jsonl"; then :; else
          echo "!! $store W writers $w failed (see $log)" >&2
        fi
        rm -rf "$d"
      done
    done
  fi

  if [[ "$PEERS" != 0 && -d "$here/peers.d" ]]; then
    shopt -s nullglob
    for p in "$here"/peers.d/*; do
      [[ -f "$p" && -x "$p" ]] || continue
      d="$(fresh_dir)"
      echo ">> [$rep/$REPEAT] peer $(basename "$p") ($parts; scratch $d)" >&2
      if VAULT_PEER_DIR="$d" "$p" 2>>"$log" | collect | tee -a "$jsonl"; then :; else
        echo "!! peer $(basename "$p") failed (see $log)" >&2
      fi
      rm -rf "$d"
    done
  fi
done

python3 "$here/make_table.py" "$jsonl" | tee "$out/table.md"
echo >&2
echo ">> results in $out" >&2
