#!/usr/bin/env bash
# Decode rate by weight type, phasebench against llama.cpp on the same GGUF
# files, with each type's fraction of the memory roofline (issue 24).
#
# For each preset the f32 GGUF (make_gguf.py, random weights) is quantized by
# llama.cpp into f16, Q8_0 and Q4_K (`pure`: every matrix in the type; Q4_K
# needs rows of 256, so not `small`, whose rows are 288). Both programs then
# decode 64 greedy tokens after a 128-token prompt on the same file, 2 threads,
# F32 KV cache, REPS times after a warm-up. Bytes per token come from
# `phasebench inspect model` (every matrix at its stored size, the head, the
# f32 KV cache at 160 positions), the bandwidth from membw (best of all
# threads, measured before and after).
#
# Environment: BENCH_VENV (llama-cpp-python, gguf, numpy; see README.md),
# GGUF_DIR (default /tmp/phasebench-gguf), REPS (default 5),
# RESULTS_DIR (default peers/llm/results/quant-<utc time>), ROWS (default
# "small:f32,f16,q8_0 base:f32,f16,q8_0,q4_k 1b:q4_k").
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROWS="${ROWS:-small:f32,f16,q8_0 base:f32,f16,q8_0,q4_k 1b:q4_k}"
source "$HERE/bench_setup.sh" quant
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/bench-target}/membw-native" RUSTFLAGS="-C target-cpu=native" \
  cargo build --release --quiet --manifest-path "$HERE/membw/Cargo.toml" >&2
MEMBW="${CARGO_TARGET_DIR:-/work/bench-target}/membw-native/release/membw"

"$MEMBW" --gib 2 --passes 11 | sed 's/"bench":"membw"/"bench":"membw","when":"before"/' >>"$OUT"
for row in $ROWS; do
  preset="${row%%:*}"
  IFS=, read -ra types <<<"${row#*:}"
  [[ -f "$GGUF_DIR/$preset-f32.gguf" ]] || "$PY" "$HERE/make_gguf.py" --preset "$preset" >&2
  quantized=()
  for t in "${types[@]}"; do [[ "$t" == f32 ]] || quantized+=("$t"); done
  [[ ${#quantized[@]} -eq 0 ]] || "$PY" "$HERE/quant_decode.py" make "$preset" "${quantized[@]}" >&2
  for t in "${types[@]}"; do
    file="$GGUF_DIR/$preset-$t.gguf"
    log "$preset $t"
    "$BIN" inspect model --model "$file" --positions 160 \
      | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({"bench":"model","preset":sys.argv[1],"type":sys.argv[2],"bytes_per_token":d["bytes_per_token"],"weight_types":d["weight_types"]}))' "$preset" "$t" >>"$OUT"
    "$PY" "$HERE/quant_decode.py" decode "$file" "llama.cpp" --reps "$REPS" 2>/dev/null \
      | "$PY" -c 'import json,sys; d=json.loads(sys.stdin.read()); d.update(preset=sys.argv[1], type=sys.argv[2]); print(json.dumps(d))' "$preset" "$t" >>"$OUT"
    cat >"$WORK/s.yaml" <<YAML
scenario: quant-decode
seed: 1
engines:
  m: { kind: llm, model: "$file", device: cpu, threads: 2 }
phases:
  - name: decode
    workloads:
      - { name: decode, engine: m, op: generate, warmup: 1x, iterations: $REPS, with: { prompt_tokens: 128, max_tokens: 65 } }
YAML
    "$BIN" run "$WORK/s.yaml" --out "$WORK/out-$preset-$t" --quiet >&2
    "$PY" "$HERE/phasebench_lines.py" "$WORK/out-$preset-$t/results.json" "$preset" f32 \
      | "$PY" -c 'import json,sys
for line in sys.stdin:
    d=json.loads(line)
    if d["metric"]=="decode": d.update(type=sys.argv[1], label="phasebench"); print(json.dumps(d))' "$t" >>"$OUT"
  done
done
"$MEMBW" --gib 2 --passes 11 | sed 's/"bench":"membw"/"bench":"membw","when":"after"/' >>"$OUT"
{
  echo "## Decode by weight type — $(date -u +%Y-%m-%dT%H:%MZ), $(lscpu | sed -n 's/^Model name:[[:space:]]*//p'), $(nproc) cores, 2 threads, reps=$REPS"
  echo
  "$PY" "$HERE/quant_table.py" "$OUT"
} | tee "$RESULTS_DIR/table.md"
log "results in $RESULTS_DIR"
