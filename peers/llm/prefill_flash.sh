#!/usr/bin/env bash
# Prefill of a 2048-token prompt with flash attention and an f16 KV cache,
# phasebench against llama.cpp (--flash-attn, f16 KV) on the same GGUF file
# (issue 24). Both read `{preset}-f32.gguf` (make_gguf.py, random weights),
# 2 threads, one warm-up then REPS timed prefills into a fresh cache, to the
# last position's logits. phasebench also runs its flash prefill with an f32
# KV cache, to show what the narrow cache costs or saves.
#
# Environment: BENCH_VENV (llama-cpp-python; see README.md), GGUF_DIR
# (default /tmp/phasebench-gguf), REPS (default 5), PRESETS (default
# "small base"), RESULTS_DIR (default peers/llm/results/prefill-<utc time>).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PRESETS="${PRESETS:-small base}"
source "$HERE/bench_setup.sh" prefill

for preset in $PRESETS; do
  file="$GGUF_DIR/$preset-f32.gguf"
  [[ -f "$file" ]] || "$PY" "$HERE/make_gguf.py" --preset "$preset" >&2
  log "$preset: llama.cpp"
  "$PY" "$HERE/llamacpp_peer.py" --preset "$preset" --kv f16 --flash-attn --prefill 2048 --decode-gen 0 \
    --reps "$REPS" --label "llama.cpp f16 KV + flash" 2>/dev/null | grep '"metric": "prefill"' >>"$OUT"
  log "$preset: phasebench"
  cat >"$WORK/s.yaml" <<YAML
scenario: prefill-flash
seed: 1
defaults: { warmup: 1x, iterations: $REPS }
engines:
  f16kv: { kind: llm, model: "$file", device: cpu, threads: 2, attention: flash, kv_dtype: f16 }
  f32kv: { kind: llm, model: "$file", device: cpu, threads: 2, attention: flash, kv_dtype: f32 }
phases:
  - name: prefill
    workloads:
      - { name: "phasebench f16 KV + flash", engine: f16kv, op: prefill, with: { prompt_tokens: 2048 } }
      - { name: "phasebench f32 KV + flash", engine: f32kv, op: prefill, with: { prompt_tokens: 2048 } }
YAML
  "$BIN" run "$WORK/s.yaml" --out "$WORK/out-$preset" --quiet >&2
  "$PY" - "$WORK/out-$preset/results.json" "$preset" >>"$OUT" <<'PY'
import json, sys
results, preset = json.load(open(sys.argv[1])), sys.argv[2]
for run in results["runs"]:
    latency = run["metrics"]["latency"]["summary"]
    shares = {name: round(m["summary"]["mean"] * 1e3, 1) for name, m in run["metrics"].items()
              if m.get("part_of") == "latency" and m.get("summary")}
    print(json.dumps({"bench": "phasebench", "label": run["workload"], "preset": preset, "metric": "prefill",
                      "tokens": 2048, "reps": latency["count"], "median_ms": round(latency["p50"] * 1e3, 2),
                      "min_ms": round(latency["min"] * 1e3, 2), "max_ms": round(latency["max"] * 1e3, 2),
                      "mean_ms_by_category": shares}))
PY
done
{
  echo "## Prefill of 2048 tokens, flash attention — $(date -u +%Y-%m-%dT%H:%MZ), $(lscpu | sed -n 's/^Model name:[[:space:]]*//p'), $(nproc) cores, 2 threads, reps=$REPS"
  echo
  "$PY" - "$OUT" <<'PY'
import json, sys
lines = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
print("| shape | program | median ms (min–max) | ÷ llama.cpp f16 KV + flash |")
print("|---|---|---:|---:|")
for preset in dict.fromkeys(d["preset"] for d in lines):
    rows = [d for d in lines if d["preset"] == preset]
    peer = next(d for d in rows if d["bench"] == "llamacpp-peer")
    for d in rows:
        print(f"| {preset} | {d['label']} | {d['median_ms']:.1f} ({d['min_ms']:.1f}–{d['max_ms']:.1f}) "
              f"| {d['median_ms'] / peer['median_ms']:.2f} |")
PY
} | tee "$RESULTS_DIR/table.md"
log "results in $RESULTS_DIR"
