#!/usr/bin/env bash
# The prepared GPU check (docs/gpu.md). On a machine with an NVIDIA GPU and
# CUDA 13, from a copy of the repository holding gpu-bundle/ (built on any
# x86-64 machine by scripts/gpu-bundle.sh):
#
#   scripts/gpu-check.sh [OUT_DIR]
#
# 1. says what CUDA it found; 2. runs the CUDA tests (correctness first);
# 3. times flash attention and PyTorch's SDPA on the same shapes; 4. runs
# scenarios/llm-gpu.yaml (SMOKE=1 for a short run); 5. prints the table of
# docs/performance.md. Logs and results go to OUT_DIR (gpu-check-out).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu-check-out}
mkdir -p "$out"
bundle=${BUNDLE:-gpu-bundle}
export CARGO_BIN_EXE_phasebench=$PWD/$bundle/phasebench PHASEBENCH_REPO=$PWD
status=0

echo "== CUDA"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | tee "$out/nvidia-smi.txt"
"$bundle/phasebench" inspect cuda 2>&1 | tee "$out/cuda.txt" || { echo "no usable CUDA: stopping"; exit 1; }

echo "== CUDA tests"
# The GPU tests are #[ignore]d so that they never pass without a GPU; here
# they run, and a missing GPU fails them. The throughput table runs below.
"$bundle/llm_cuda" --include-ignored --skip attention_throughput --test-threads 1 2>&1 | tee "$out/tests.log" | grep -E "^test |test result|panicked|error" || true
grep -q "test result: ok" "$out/tests.log" || status=1

echo "== attention throughput (phasebench)"
"$bundle/llm_cuda" attention_throughput --ignored --nocapture --test-threads 1 2>&1 | tee "$out/attention.txt" | grep -E "^(kernel|flash|naive)"
echo "== attention throughput (PyTorch) and copy bandwidth"
python3 peers/gpu/sdpa.py 2>&1 | tee "$out/sdpa.txt"

echo "== scenarios/llm-gpu.yaml"
"$bundle/phasebench" run scenarios/llm-gpu.yaml --out "$out/run" ${SMOKE:+--smoke} 2>&1 | tee "$out/scenario.txt" | tail -40

echo "== table"
python3 peers/gpu/table.py "$out" | tee "$out/table.md"
exit $status
