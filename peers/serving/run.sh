#!/usr/bin/env bash
# Serving peers, each on loopback, one after the other:
#
#  1. throughput: output tokens per second of `phasebench serve` (continuous
#     batching) and of llama.cpp's server (PyPI llama-cpp-python[server], a
#     GGUF of the same shape from peers/llm/make_gguf.py, same threads) at 1,
#     4 and 16 concurrent streams, measured in one phasebench run
#     (throughput.yaml) per preset;
#  2. side by side: NVIDIA's AIPerf and phasebench's own `openai` engine
#     measure the same `phasebench serve` at the same load, interleaved,
#     and the time-to-first-token and inter-token medians are compared.
#
# Output goes to $OUT (default peers/serving/results-<date>), committed;
# tests/serving_peers.rs checks the committed tables say what the docs say.
#
# Environment (all optional):
#   PHASEBENCH  the binary (default target/release/phasebench; built if missing)
#   PEER_VENV   Python with llama-cpp-python[server], gguf, numpy (default /work/venv-peers)
#   BENCH_VENV  Python with aiperf (default /work/venv-bench)
#   GGUF_DIR    where the GGUFs go (default /tmp/phasebench-gguf)
#   PRESETS     "small base" (default) or a subset
#   THREADS     threads of each server (default 2)
#   SKIP_THROUGHPUT=1, SKIP_AIPERF=1   leave a part out
# Install the peers once (llama-cpp-python compiles llama.cpp, ~10 min):
#   python3 -m venv /work/venv-peers && /work/venv-peers/bin/pip install 'llama-cpp-python[server]' gguf numpy
#   python3 -m venv /work/venv-bench && /work/venv-bench/bin/pip install aiperf
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PHASEBENCH="${PHASEBENCH:-$ROOT/target/release/phasebench}"
PEER_VENV="${PEER_VENV:-/work/venv-peers}"
BENCH_VENV="${BENCH_VENV:-/work/venv-bench}"
GGUF_DIR="${GGUF_DIR:-/tmp/phasebench-gguf}"
PRESETS="${PRESETS:-small base}"
THREADS="${THREADS:-2}"
OUT="${OUT:-$HERE/results-$(date -u +%Y%m%d)}"
OURS=18000
PEER=18001
mkdir -p "$OUT"
log() { echo "[serving] $*" >&2; }

if [[ ! -x "$PHASEBENCH" ]]; then
  log "building $PHASEBENCH"
  (cd "$ROOT" && cargo build --release --quiet)
fi

PIDS=()
stop_all() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
}
trap stop_all EXIT

wait_for() { # port
  for _ in $(seq 600); do
    if curl -sf "http://127.0.0.1:$1/v1/models" > /dev/null; then return 0; fi
    sleep 0.1
  done
  log "nothing answers on port $1"; return 1
}

start_ours() { # preset max_batch [threads] [cpus]
  ${4:+taskset -c "$4"} "$PHASEBENCH" serve --model "$1" --threads "${3:-$THREADS}" --port "$OURS" --max-batch "$2" \
    > "$OUT/serve-$1-batch$2.log" 2>&1 &
  PIDS+=($!)
  wait_for "$OURS"
}

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/ {print $2}') GiB"
  echo "phasebench: $("$PHASEBENCH" --version)"
  echo "llama-cpp-python: $("$PEER_VENV/bin/python" -c 'import llama_cpp; print(llama_cpp.__version__)' 2>/dev/null || echo absent)"
  echo "aiperf: $("$BENCH_VENV/bin/aiperf" --version 2>/dev/null | tail -1 || echo absent)"
  echo "threads per server: $THREADS"
} > "$OUT/machine.txt"

if [[ "${SKIP_THROUGHPUT:-0}" != 1 ]]; then
  for preset in $PRESETS; do
    gguf="$GGUF_DIR/$preset-f32.gguf"
    [[ -f "$gguf" ]] || "$PEER_VENV/bin/python" "$ROOT/peers/llm/make_gguf.py" --preset "$preset" --out "$gguf" >&2
    log "throughput, $preset: phasebench serve on :$OURS, llama.cpp's server on :$PEER"
    start_ours "$preset" 16
    # Concurrent requests queue (by default a new one cuts off the one streaming).
    "$PEER_VENV/bin/python" -m llama_cpp.server --model "$gguf" --host 127.0.0.1 --port "$PEER" \
      --n_threads "$THREADS" --n_threads_batch "$THREADS" --n_ctx 2048 --interrupt_requests False \
      > "$OUT/llamacpp-$preset.log" 2>&1 &
    PIDS+=($!)
    wait_for "$PEER"
    rm -rf "$OUT/throughput-$preset"
    "$PHASEBENCH" run "$HERE/throughput.yaml" --quiet --out "$OUT/throughput-$preset" \
      --var "ours=http://127.0.0.1:$OURS/v1" --var "peer=http://127.0.0.1:$PEER/v1" || true
    stop_all
  done
fi

if [[ "${SKIP_AIPERF:-0}" != 1 ]]; then
  tokenizer="$OUT/byte-tokenizer"
  "$BENCH_VENV/bin/python" "$HERE/byte_tokenizer.py" "$tokenizer" >&2 2>/dev/null
  # The server on core 0 with one thread, each client alone on core 1: a
  # client's own work (AIPerf is several Python processes) must not slow
  # the server it measures, or the two would measure different servers.
  log "side by side: AIPerf and phasebench against phasebench serve --model small (server on cpu 0, client on cpu 1)"
  start_ours small 16 1 0
  for rep in 1 2 3; do
    rm -rf "$OUT/aiperf-$rep" "$OUT/phasebench-$rep"
    taskset -c 1 "$BENCH_VENV/bin/aiperf" profile --model small --url "http://127.0.0.1:$OURS" \
      --endpoint-type completions --streaming --tokenizer "$tokenizer" --use-server-token-count \
      --concurrency 4 --request-count 64 --warmup-request-count 4 \
      --synthetic-input-tokens-mean 64 --synthetic-input-tokens-stddev 0 \
      --output-tokens-mean 64 --output-tokens-stddev 0 --extra-inputs ignore_eos:true \
      --random-seed "$rep" --output-artifact-dir "$OUT/aiperf-$rep" --ui-type none > /dev/null 2>&1
    taskset -c 1 "$PHASEBENCH" run "$HERE/side-by-side.yaml" --quiet --out "$OUT/phasebench-$rep" --seed "$rep" \
      --var "url=http://127.0.0.1:$OURS/v1" || true
  done
  stop_all
  rm -rf "$tokenizer"
fi

python3 "$HERE/tables.py" "$OUT" | tee "$OUT/tables.md"
