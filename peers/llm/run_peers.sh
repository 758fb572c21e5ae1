#!/usr/bin/env bash
# Build and run the LLM peer benchmarks and the memory roofline, then print a
# combined markdown table. Safe to run again at any time; see README.md.
#
# Environment (all optional):
#   CARGO_TARGET_DIR  target dir for the two Rust crates (default /work/bench-target,
#                     kept apart from the main project's target/)
#   BENCH_VENV        Python venv with llama-cpp-python, gguf, numpy
#                     (default /work/bench-venv; created and installed if missing)
#   GGUF_DIR          where the random-weight GGUFs go (default /tmp/phasebench-gguf)
#   RESULTS_DIR       where JSON lines + table go (default peers/llm/results/<utc time>)
#   PRESETS           "small base" (default) or a subset
#   REPS              repetitions per measurement (default 3)
#   THREADS           threads for every peer (default: nproc)
#   SKIP_CANDLE=1, SKIP_LLAMACPP=1, SKIP_MEMBW=1   leave a piece out
#   LLAMACPP_EXTRA    extra llamacpp_peer.py configs, ';'-separated argument lists,
#                     e.g. "--kv f16 --flash-attn --label llama.cpp-f16kv-fa" (no spaces inside one argument)
#   PEER_CMD          extra command printing peer JSON lines (see README), e.g. phasebench's own
# Every executable file in peers/llm/peers.d/ is also run as an extra peer with
# PRESETS, REPS, THREADS exported; its stdout is collected like PEER_CMD's.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/bench-target}"
BENCH_VENV="${BENCH_VENV:-/work/bench-venv}"
export GGUF_DIR="${GGUF_DIR:-/tmp/phasebench-gguf}"
RESULTS_DIR="${RESULTS_DIR:-$HERE/results/$(date -u +%Y%m%dT%H%M%SZ)}"
PRESETS="${PRESETS:-small base}"
REPS="${REPS:-3}"
THREADS="${THREADS:-$(nproc)}"
export PRESETS REPS THREADS RAYON_NUM_THREADS="$THREADS"
mkdir -p "$RESULTS_DIR"
log() { echo "[run_peers] $*" >&2; }

# ---- build -----------------------------------------------------------------
if [[ "${SKIP_MEMBW:-0}" != 1 ]]; then
  log "building membw (target-cpu=native: it is a probe of the machine's ceiling)"
  # separate target dir so the native RUSTFLAGS do not invalidate candle-peer's build
  CARGO_TARGET_DIR="$CARGO_TARGET_DIR/membw-native" RUSTFLAGS="-C target-cpu=native" \
    cargo build --release --quiet --manifest-path "$HERE/membw/Cargo.toml"
  MEMBW="$CARGO_TARGET_DIR/membw-native/release/membw"
fi
if [[ "${SKIP_CANDLE:-0}" != 1 ]]; then
  log "building candle-peer (default RUSTFLAGS, like the phasebench build)"
  cargo build --release --quiet --manifest-path "$HERE/candle-peer/Cargo.toml"
fi
if [[ "${SKIP_LLAMACPP:-0}" != 1 ]]; then
  if ! "$BENCH_VENV/bin/python" -c "import llama_cpp, gguf, numpy" 2>/dev/null; then
    log "installing llama-cpp-python (compiles llama.cpp: ~10-20 min on 2 cores) into $BENCH_VENV"
    python3 -m venv "$BENCH_VENV"
    "$BENCH_VENV/bin/pip" install -q --upgrade pip
    CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=ON -DGGML_BLAS=OFF -DGGML_CUDA=OFF -DGGML_OPENMP=ON}" \
      CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
      "$BENCH_VENV/bin/pip" install -q --no-cache-dir llama-cpp-python gguf numpy
  fi
  PY="$BENCH_VENV/bin/python"
  for p in $PRESETS; do
    [[ -f "$GGUF_DIR/$p-f32.gguf" ]] || "$PY" "$HERE/make_gguf.py" --preset "$p" >&2
  done
fi

# ---- run -------------------------------------------------------------------
FILES=()
membw() {
  [[ "${SKIP_MEMBW:-0}" == 1 ]] && return 0
  log "membw ($1)"
  "$MEMBW" --gib 2 --passes 11 | tee "$RESULTS_DIR/membw_$1.jsonl"
  FILES+=("$RESULTS_DIR/membw_$1.jsonl")
}
membw before

for p in $PRESETS; do
  if [[ "${SKIP_CANDLE:-0}" != 1 ]]; then
    log "candle-peer $p"
    "$CARGO_TARGET_DIR/release/candle-peer" --preset "$p" --reps "$REPS" \
      | tee -a "$RESULTS_DIR/candle.jsonl"
  fi
  if [[ "${SKIP_LLAMACPP:-0}" != 1 ]]; then
    log "llama.cpp $p"
    "$PY" "$HERE/llamacpp_peer.py" --preset "$p" --reps "$REPS" --threads "$THREADS" \
      2>>"$RESULTS_DIR/llamacpp.stderr" | tee -a "$RESULTS_DIR/llamacpp.jsonl"
    if [[ -n "${LLAMACPP_EXTRA:-}" ]]; then
      IFS=';' read -ra extras <<<"$LLAMACPP_EXTRA"
      for e in "${extras[@]}"; do
        # shellcheck disable=SC2086
        "$PY" "$HERE/llamacpp_peer.py" --preset "$p" --reps "$REPS" --threads "$THREADS" $e \
          2>>"$RESULTS_DIR/llamacpp.stderr" | tee -a "$RESULTS_DIR/llamacpp.jsonl"
      done
    fi
  fi
done
FILES+=("$RESULTS_DIR/candle.jsonl" "$RESULTS_DIR/llamacpp.jsonl")

i=0
if [[ -n "${PEER_CMD:-}" ]]; then
  log "extra peer: $PEER_CMD"
  bash -c "$PEER_CMD" | tee "$RESULTS_DIR/extra_$i.jsonl"
  FILES+=("$RESULTS_DIR/extra_$i.jsonl"); i=$((i + 1))
fi
if [[ -d "$HERE/peers.d" ]]; then
  for f in "$HERE"/peers.d/*; do
    [[ -x "$f" && -f "$f" ]] || continue
    log "extra peer: $f"
    "$f" | tee "$RESULTS_DIR/extra_$i.jsonl"
    FILES+=("$RESULTS_DIR/extra_$i.jsonl"); i=$((i + 1))
  done
fi

membw after

"${PY:-python3}" "$HERE/bytes_per_token.py" --membw-json "$RESULTS_DIR/membw_before.jsonl" \
  >"$RESULTS_DIR/roofline.jsonl" 2>/dev/null || true
{
  echo "## LLM peers — $(date -u +%Y-%m-%dT%H:%MZ), $(lscpu | sed -n 's/^Model name:[[:space:]]*//p'), $(nproc) cores, threads=$THREADS, reps=$REPS"
  echo
  "${PY:-python3}" "$HERE/make_table.py" "${FILES[@]}"
} | tee "$RESULTS_DIR/table.md"
log "results in $RESULTS_DIR"
