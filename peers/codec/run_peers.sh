#!/usr/bin/env bash
# phasebench's codec engine next to the zstd command line's own benchmark
# (`zstd -b<level> -B64K`) on the same files: the built-in corpus, exported;
# and, when Python can import `zstandard` (pip install zstandard; PYTHONPATH
# is honoured), next to python-zstandard, which bundles the same libzstd
# version as phasebench, through python_peer.py.
#
# For each round and each zstd level, runs `zstd -b` (single thread, 64 KiB
# blocks) and then phasebench's compress and decompress operations on the
# same folder with the same block size, each covering whole passes over the
# blocks; table.py prints medians and the ratios between the two.
#
# Environment (all optional):
#   LEVELS="1 3 9 19"  REPEAT=3  ZSTD_SECONDS=3 (zstd -i: seconds per measurement)
#   RESULTS_DIR=DIR    (default: results/<utc time>/)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
LEVELS="${LEVELS:-1 3 9 19}"
REPEAT="${REPEAT:-3}"
ZSTD_SECONDS="${ZSTD_SECONDS:-3}"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="${RESULTS_DIR:-$here/results/$stamp}"
mkdir -p "$out"

command -v zstd >/dev/null || { echo "needs the zstd command line tool (apt install zstd)" >&2; exit 2; }
(cd "$repo" && cargo build --release --locked --quiet)
phasebench="$repo/target/release/phasebench"
corpus="$out/corpus"
"$phasebench" inspect corpus --export "$corpus" >"$out/corpus.txt"

{
  echo "utc: $stamp"
  echo "host: $(uname -srm)"
  lscpu 2>/dev/null | grep -E '^(Model name|CPU\(s\)|Hypervisor vendor)' || true
  grep -E '^MemTotal' /proc/meminfo || true
  echo "zstd cli: $(zstd --version)"
  python3 -c "import zstandard; print('python-zstandard:', zstandard.__version__, 'libzstd', '.'.join(map(str, zstandard.ZSTD_VERSION)))" 2>/dev/null || echo "python-zstandard: not installed"
  echo "zstd library in phasebench: $(awk '/^name = "zstd-sys"$/{getline; print $3}' "$repo/Cargo.lock" | tr -d '"')"
  echo "LEVELS=$LEVELS REPEAT=$REPEAT ZSTD_SECONDS=$ZSTD_SECONDS"
} >"$out/machine.txt"

# Blocks in one pass: each file split into 64 KiB blocks.
blocks=$(python3 -c "import os,sys; print(sum(-(-os.path.getsize(os.path.join(sys.argv[1], f)) // 65536) for f in os.listdir(sys.argv[1])))" "$corpus")

# Whole passes per level: enough calls for a stable figure at fast levels.
passes() { case "$1" in 1|2|3|4|5) echo 20 ;; 6|7|8|9|10|11|12) echo 3 ;; *) echo 1 ;; esac; }

scenario="$out/levels.yaml"
{
  echo "scenario: codec-levels"
  echo "seed: 1"
  echo "engines:"
  for level in $LEVELS; do
    echo "  zstd-$level: { kind: codec, algorithm: zstd, level: $level, corpus: \"$corpus\", block_size: 64KiB }"
  done
  echo "phases:"
  echo "  - name: levels"
  echo "    workloads:"
  for level in $LEVELS; do
    n=$(( blocks * $(passes "$level") ))
    echo "      - { name: c-$level, engine: zstd-$level, op: compress, iterations: $n, warmup: 10x }"
    echo "      - { name: d-$level, engine: zstd-$level, op: decompress, iterations: $(( blocks * 20 )), warmup: 10x }"
  done
} >"$scenario"

for round in $(seq 1 "$REPEAT"); do
  for level in $LEVELS; do
    echo "round $round: zstd -b$level" >&2
    # Progress lines share the terminal line (\r); the last one with both speeds is the result.
    zstd -b"$level" -B64K -i"$ZSTD_SECONDS" "$corpus"/* 2>&1 | tr '\r' '\n' | grep -E 'MB/s, *[0-9.]+ MB/s' | tail -1 \
      | sed "s/^/round=$round level=$level /" >>"$out/zstd-cli.txt"
  done
  if python3 -c "import zstandard" 2>/dev/null; then
    echo "round $round: python-zstandard" >&2
    python3 "$here/python_peer.py" "$corpus" "$ZSTD_SECONDS" $LEVELS | sed "s/^/round=$round /" >>"$out/python-zstandard.txt"
  fi
  echo "round $round: phasebench" >&2
  "$phasebench" run "$scenario" --out "$out/phasebench-$round" --quiet >"$out/phasebench-$round.txt"
done

python3 "$here/table.py" "$out" | tee "$out/table.md"
